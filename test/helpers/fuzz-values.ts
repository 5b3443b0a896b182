import * as fc from "fast-check";

/**
 * A long string, written out only when serialised: counterexamples print as `Huge(300000)`,
 * not as the string itself.
 */
export class Huge {
  constructor(readonly chars: number) {}
  toJSON() {
    return "x".repeat(this.chars);
  }
  [fc.toStringMethod]() {
    return `Huge(${this.chars})`;
  }
}

/** Arrays nested `depth` deep, written out only when serialised. */
export class Deep {
  constructor(readonly depth: number) {}
  toJSON() {
    let v: unknown = [];
    for (let i = 1; i < this.depth; i++) v = [v];
    return v;
  }
  [fc.toStringMethod]() {
    return `Deep(${this.depth})`;
  }
}

/** Strings that break naive parsers, paths, encodings and SQL. */
const NASTY_STRINGS = [
  "",
  " ",
  "../",
  "../../etc/passwd",
  "..%2f..%2f",
  "%2e%2e/",
  "%",
  "%zz",
  "\u0000",
  "\ud800",
  "\udc00x",
  "💥",
  "e\u0301",
  "\u202e",
  "\ufeff",
  "a/b",
  "/",
  "//",
  "\\",
  "?x=1",
  "#",
  "\t\n",
  "' OR 1=1 --",
  "<script>",
  "${x}",
  "__proto__",
  "constructor",
  "j_",
  "NaN",
  "-1",
  "1e309",
  "0x10",
] as const;

export const nastyString: fc.Arbitrary<string> = fc.oneof(fc.constantFrom(...NASTY_STRINGS), fc.string({ unit: "binary", maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }));

/** Values of every JSON type, at and past the edges, including huge and deeply nested ones. */
export function nastyValue(hugeChars: readonly number[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constantFrom(null, true, false, 0, -1, 1.5, -0, 2 ** 53, 1e300, -1e300, Number.MIN_VALUE, [], {}, [[]], { "": "" }),
    nastyString,
    fc.constantFrom(...hugeChars).map((n) => new Huge(n)),
    fc.constantFrom(64, 2000).map((d) => new Deep(d)),
    fc.jsonValue({ maxDepth: 3 }),
  );
}

/** JSON texts that JSON.stringify never writes: out-of-range numbers, duplicate keys, prototype keys. */
export const RAW_JSON_TEXTS = [
  '{"size": 1e309}',
  '{"attempt": -1e309}',
  '{"a": 1, "a": 2}',
  '{"__proto__": {"admin": true}}',
  '{"constructor": {"prototype": {"x": 1}}}',
  "[]",
  "null",
  "0",
  '""',
  '"\\ud800"',
  "[".repeat(5000) + "]".repeat(5000),
] as const;

/** One change to a JSON value: a node replaced, deleted, or given an extra member. */
export type Mutation = { at: number; op: "replace" | "delete" | "extra"; key: string; value: unknown };

export function mutation(hugeChars: readonly number[]): fc.Arbitrary<Mutation> {
  return fc.record({ at: fc.nat(), op: fc.constantFrom("replace", "delete", "extra"), key: fc.oneof(nastyString, fc.constantFrom("type", "payload", "v", "job_id", "attempt")), value: nastyValue(hugeChars) });
}

type Path = (string | number)[];

function paths(value: unknown, at: Path = []): Path[] {
  const out: Path[] = [at];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...at, k]));
  return out;
}

/**
 * Applies a mutation to a copy of a JSON value; `at` picks the node (modulo the node count, in
 * depth-first order, the root first).
 *
 * @example
 * mutate({ a: 1 }, { at: 1, op: "replace", key: "", value: "x" }) // { a: "x" }
 */
export function mutate(value: unknown, m: Mutation): unknown {
  const root = structuredClone(value);
  const all = paths(root);
  const path = all[m.at % all.length]!;
  if (path.length === 0) {
    if (m.op === "extra" && root && typeof root === "object" && !Array.isArray(root)) return { ...root, [m.key]: m.value };
    return m.value;
  }
  const parent = path.slice(0, -1).reduce<any>((node, k) => node[k], root);
  const last = path.at(-1)!;
  const node = parent[last];
  if (m.op === "delete") {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else if (m.op === "extra" && node && typeof node === "object") {
    if (Array.isArray(node)) node.push(m.value);
    // Defined, not assigned: `node.__proto__ = v` would set the prototype, not a member.
    else Object.defineProperty(node, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
  } else {
    parent[last] = m.value;
  }
  return root;
}
