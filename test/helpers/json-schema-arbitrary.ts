import * as fc from "fast-check";

/** The part of JSON Schema (2020-12, as zod and /openapi.json write it) that values are generated from. */
export type JsonSchema = {
  $ref?: string;
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
};

export type SchemaArbitraryOptions = {
  /** Resolves a `$ref` (e.g. `#/components/schemas/Job`). */
  resolve?: (ref: string) => JsonSchema;
  /**
   * Values mixed in for properties of these names, so generated requests also name things
   * that exist (a real job id, a held attempt) and reach past the not-found checks.
   */
  known?: Record<string, fc.Arbitrary<unknown>>;
};

/**
 * Bounds on what is generated from a schema, whatever it allows: valid values stay small so a
 * run is cheap; the huge ones are the mutations' business.
 */
export const GENERATION_LIMITS = { stringChars: 48, arrayItems: 4, extraKeys: 3 } as const;

// fast-check's regex generator has no lookarounds: generate from the pattern without them and
// keep what the whole pattern accepts.
const LOOKAROUND = /^\(\?<?[=!]/;

function withoutLookarounds(source: string): string {
  let out = "";
  for (let i = 0; i < source.length; i++) {
    if (source[i] === "\\") {
      out += source.slice(i, i + 2);
      i++;
      continue;
    }
    if (LOOKAROUND.test(source.slice(i, i + 4))) {
      let depth = 0;
      for (; i < source.length; i++) {
        if (source[i] === "\\") i++;
        else if (source[i] === "(") depth++;
        else if (source[i] === ")" && --depth === 0) break;
      }
      continue;
    }
    out += source[i];
  }
  return out;
}

function patternString(pattern: string, minLength: number, maxLength: number): fc.Arbitrary<string> {
  const full = new RegExp(pattern, "u");
  const fits = (s: string) => s.length >= minLength && s.length <= maxLength && full.test(s);
  return fc.stringMatching(new RegExp(withoutLookarounds(pattern))).filter(fits);
}

function plainString(minLength: number, maxLength: number): fc.Arbitrary<string> {
  const cap = Math.max(minLength, Math.min(maxLength, GENERATION_LIMITS.stringChars));
  // Code points, not graphemes: the schemas count UTF-16 units, so cut to the bound.
  return fc
    .oneof(fc.string({ minLength, maxLength: cap }), fc.string({ unit: "binary", minLength, maxLength: cap }))
    .map((s) => s.slice(0, maxLength))
    .filter((s) => s.length >= minLength);
}

function numberArbitrary(schema: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  const lower = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum : -Number.MAX_SAFE_INTEGER);
  const upper = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum : Number.MAX_SAFE_INTEGER);
  if (!integer) {
    return fc.double({ min: lower, max: upper, minExcluded: schema.exclusiveMinimum !== undefined, maxExcluded: schema.exclusiveMaximum !== undefined, noNaN: true, noDefaultInfinity: true });
  }
  const min = Math.ceil(schema.exclusiveMinimum !== undefined && schema.minimum === undefined ? lower + 1 : lower);
  const max = Math.floor(schema.exclusiveMaximum !== undefined && schema.maximum === undefined ? upper - 1 : upper);
  // fc.integer is 32-bit; wider ranges (timestamps, sizes, exit codes) go through bigint.
  const whole = min >= -0x80000000 && max <= 0x7fffffff ? fc.integer({ min, max }) : fc.bigInt({ min: BigInt(Math.max(min, -Number.MAX_SAFE_INTEGER)), max: BigInt(Math.min(max, Number.MAX_SAFE_INTEGER)) }).map(Number);
  // Open-ended ranges would give mostly huge numbers (past the routes' own size limits): small ones as often.
  if (max - min <= 1 << 16) return whole;
  const low = Math.max(min, Math.min(0, max));
  return fc.oneof(fc.integer({ min: low, max: Math.min(max, low + 1024) }), whole);
}

function objectArbitrary(schema: JsonSchema, opts: SchemaArbitraryOptions, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const properties = schema.properties ?? {};
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, sub] of Object.entries(properties)) {
    const generated = arbitraryFor(sub, opts, depth + 1);
    const known = opts.known?.[key];
    model[key] = known ? fc.oneof(known, generated) : generated;
  }
  const fixed = fc.record(model, { requiredKeys: (schema.required ?? []).filter((k) => k in properties) });
  const extra = schema.additionalProperties;
  if (typeof extra !== "object") return fixed;
  // Where a schema leaves its keys open (/openapi.json drops zod's record key patterns), keys are
  // identifiers, which every key rule in gridx admits; odd keys are the mutations' business.
  const keys = schema.propertyNames ? (arbitraryFor(schema.propertyNames, opts, depth + 1) as fc.Arbitrary<string>) : fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,15}$/);
  const more = fc.dictionary(
    keys.filter((k) => !(k in properties)),
    arbitraryFor(extra, opts, depth + 1),
    { maxKeys: GENERATION_LIMITS.extraKeys },
  );
  return fc.tuple(fixed, more).map(([a, b]) => ({ ...b, ...a }));
}

function merged(parts: JsonSchema[], opts: SchemaArbitraryOptions): JsonSchema {
  const flat = parts.map((p) => (p.$ref && opts.resolve ? opts.resolve(p.$ref) : p));
  return {
    type: "object",
    properties: Object.assign({}, ...flat.map((p) => p.properties ?? {})),
    required: flat.flatMap((p) => p.required ?? []),
  };
}

/**
 * Values that satisfy a JSON Schema, for the subset of keywords the API's and the protocol's
 * schemas use. A schema with no type accepts anything: it gets any JSON value.
 *
 * @example
 * fc.sample(arbitraryFor({ type: "integer", minimum: 1, maximum: 3 }), 5) // [1, 3, 2, 2, 1]
 */
export function arbitraryFor(schema: JsonSchema, opts: SchemaArbitraryOptions = {}, depth = 0): fc.Arbitrary<unknown> {
  if (depth > 32) throw new Error("schema nests deeper than 32 levels; is it recursive?");
  if (schema.$ref) {
    if (!opts.resolve) throw new Error(`no resolver for ${schema.$ref}`);
    return arbitraryFor(opts.resolve(schema.$ref), opts, depth + 1);
  }
  if ("const" in schema) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const choices = schema.anyOf ?? schema.oneOf;
  if (choices) return fc.oneof(...choices.map((c) => arbitraryFor(c, opts, depth + 1)));
  if (schema.allOf) return arbitraryFor(merged(schema.allOf, opts), opts, depth + 1);
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : schema.properties ? ["object"] : [];
  if (types.length === 0) return fc.jsonValue({ maxDepth: 2 });
  return fc.oneof(
    ...types.map((type): fc.Arbitrary<unknown> => {
      switch (type) {
        case "string": {
          const min = schema.minLength ?? 0;
          const max = schema.maxLength ?? Number.MAX_SAFE_INTEGER;
          return schema.pattern ? patternString(schema.pattern, min, max) : plainString(min, max);
        }
        case "integer":
        case "number":
          return numberArbitrary(schema, type === "integer");
        case "boolean":
          return fc.boolean();
        case "null":
          return fc.constant(null);
        case "array": {
          const min = schema.minItems ?? 0;
          const max = Math.max(min, Math.min(schema.maxItems ?? Number.MAX_SAFE_INTEGER, GENERATION_LIMITS.arrayItems));
          return fc.array(schema.items ? arbitraryFor(schema.items, opts, depth + 1) : fc.jsonValue({ maxDepth: 1 }), { minLength: min, maxLength: max });
        }
        case "object":
          return objectArbitrary(schema, opts, depth);
        default:
          throw new Error(`JSON Schema type ${type} is not generated`);
      }
    }),
  );
}
