import { isIPv4, isIPv6 } from "node:net";
import { notARepository } from "../runner/command-image.ts";
import { BLOCKED_RANGES, cidrWithin } from "../sandbox-net/rules.ts";

/*
 * What an environment's Dockerfile may not ask of the Docker engine. The classic builder
 * confines RUN steps only: dockerd itself fetches an ADD URL, pulls a FROM or COPY --from
 * image and runs a base image's ONBUILD triggers, on the host's network and with its
 * registry connections. So before a build, the Dockerfile is read as Docker's parser reads it
 * (line continuations, the `# escape=` directive, any case of instruction, flags, JSON form,
 * quotes and global ARG defaults) and refused when it asks for any of those past the rules
 * below. See docs/security.md, "Confined builds".
 */

/** The most of a Dockerfile the agent reads; a larger one is refused. */
export const DOCKERFILE_MAX_BYTES = 1024 * 1024;

/** An image a build would use: a stage's base or a `COPY --from` source, as Docker would resolve it. */
export interface ImageUse {
  line: number;
  ref: string;
  how: "FROM" | "COPY --from";
}

export interface DockerfileCheck {
  /** Why the Dockerfile may not be built, each naming its line; empty when it may. */
  refusals: string[];
  /** The images it uses, for the checks that need this machine (the login record, DNS, ONBUILD triggers). */
  images: ImageUse[];
}

/** One instruction, continuation lines joined. */
interface Instruction {
  line: number;
  keyword: string;
  args: string;
}

/** Go's unicode.IsSpace, which Docker's parser trims lines with (JavaScript's \s differs). */
const GO_SPACE = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const LEADING_SPACE = new RegExp(`^[${GO_SPACE}]+`);
const TRAILING_SPACE = new RegExp(`[${GO_SPACE}]+$`);
const trimGo = (s: string) => s.replace(LEADING_SPACE, "").replace(TRAILING_SPACE, "");
/** Docker's tokenWhitespace, which splits an instruction into words. */
const WORDS = /[\t\v\f\r ]+/;
const ASCII = /^[\x20-\x7e\t]*$/;

/** An ADD source that the engine fetches rather than reads from the context: any `scheme://`, and git's `user@host:path`. */
const REMOTE_SOURCE = /^([a-z][a-z0-9+.-]*:\/\/|[^/\s]*@[^/\s]+:)/i;
/** The characters an image reference is made of; anything else is refused rather than guessed at. */
const REFERENCE_CHARS = /^[A-Za-z0-9._:/@[\]-]+$/;
/** A global ARG default substituted into FROM: a plain word, no quotes, escapes or variables. */
const PLAIN_DEFAULT = /^[A-Za-z0-9._:/@-]*$/;

/**
 * Refusals and image uses of a Dockerfile (its bytes as the build context holds them).
 * `# escape=` is honoured or not depending on the engine's version when other directives
 * come first; where that could change the reading, both readings are checked.
 */
export function checkDockerfile(bytes: Buffer): DockerfileCheck {
  if (bytes.length > DOCKERFILE_MAX_BYTES) return { refusals: [`it is larger than ${DOCKERFILE_MAX_BYTES / 1024} KiB, more than the agent reads to check it`], images: [] };
  if (bytes.includes(0)) return { refusals: ["it holds NUL bytes: not a Dockerfile the agent can read"], images: [] };
  const text = new TextDecoder("utf-8").decode(bytes);
  const refusals = new Set<string>();
  const images = new Map<string, ImageUse>();
  for (const escape of escapeCandidates(text)) {
    const one = checkWith(splitInstructions(text, escape), escape);
    for (const r of one.refusals) refusals.add(r);
    for (const i of one.images) images.set(`${i.line} ${i.ref}`, i);
  }
  return { refusals: [...refusals], images: [...images.values()] };
}

/** Refusals for a base image's ONBUILD triggers, which the builder runs as steps of the stage built on it. */
export function checkTriggers(image: string, triggers: readonly string[]): string[] {
  return triggers.flatMap((trigger) => {
    const t = splitCommand(trigger);
    const checked = t.keyword === "ADD" || t.keyword === "COPY";
    // The stage built on the image parses its triggers with the default escape.
    const refusals = !checked
      ? []
      : !ASCII.test(trigger)
        ? ["characters other than ASCII, which the agent does not read as Docker might"]
        : t.keyword === "ADD"
          ? addRefusals(t.args, "\\")
          : extractFlags(t.args).flags.some((f) => f.startsWith("from="))
            ? ["COPY --from in a trigger, whose source the agent cannot check"]
            : [];
    return refusals.map((r) => `base image ${image} has ONBUILD ${trigger.slice(0, 200)}: ${r}`);
  });
}

/**
 * Why a build may not use `ref`, or null. Docker Hub and registries named by DNS pass here
 * (their addresses are checked against `addressProblem` when the build runs); an image id, the
 * agent's own environment images, an IP literal and `localhost` do not.
 */
export function imageRefProblem(ref: string): string | null {
  if (!REFERENCE_CHARS.test(ref)) return "is not an image reference the agent can check (letters, digits and . _ - : / @ [ ] only)";
  const notRepo = notARepository(ref);
  if (notRepo) return notRepo;
  const host = registryHost(ref);
  if (host === null) return null;
  const bare = hostOnly(host);
  if (bare.startsWith("[") || isIPv6(bare)) return `has an IPv6 address for its registry (${host}), which the Docker engine would reach from the host's network; name registries by a DNS name`;
  if (/^localhost$|\.localhost$/i.test(bare)) return `has this machine for its registry (${host})`;
  if (/^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*$/i.test(bare)) return `has an IP address for its registry (${host}), which the Docker engine would reach from the host's network; name registries by a DNS name`;
  return null;
}

/**
 * The registry host (with any port) of `ref`, or null for Docker Hub. As Docker decides it, and
 * wider: a first path component with a `.` or `:`, `localhost`, or any capital letter (newer
 * engines take such a component as a host).
 */
export function registryHost(ref: string): string | null {
  const slash = ref.indexOf("/");
  if (slash === -1) return null;
  const first = ref.slice(0, slash);
  return /[.:A-Z]/.test(first) || first.toLowerCase() === "localhost" ? first : null;
}

/** A registry host without its port. */
export function hostOnly(host: string): string {
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.indexOf(":");
  return colon === -1 ? host : host.slice(0, colon);
}

/** Why a registry at address `ip` is out of a build's reach (a blocked range, or one of `deny`), or null. */
export function addressProblem(ip: string, deny: readonly string[]): string | null {
  if (isIPv4(ip)) {
    const blocked = BLOCKED_RANGES.find((b) => cidrWithin(ip, b.cidr));
    if (blocked) return `${ip}, ${blocked.what}`;
    const denied = deny.find((cidr) => cidrWithin(ip, cidr));
    return denied ? `${ip}, in ${denied} (--egress-deny)` : null;
  }
  const v6 = ip.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(v6)?.[1] ?? /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6)?.slice(1).map((h) => parseInt(h, 16));
  if (typeof mapped === "string") return addressProblem(mapped, deny);
  if (mapped) return addressProblem(`${mapped[0]! >> 8}.${mapped[0]! & 255}.${mapped[1]! >> 8}.${mapped[1]! & 255}`, deny);
  if (v6 === "::" || v6 === "::1") return `${ip}, loopback or unspecified`;
  if (/^fe[89ab]/.test(v6)) return `${ip}, link-local`;
  if (/^f[cd]/.test(v6)) return `${ip}, unique local (private)`;
  if (/^ff/.test(v6)) return `${ip}, multicast`;
  return null;
}

/** The escape characters the Dockerfile may be read with: `\`, and a backtick where a leading `# escape=` names one. */
function escapeCandidates(text: string): string[] {
  const candidates = ["\\"];
  for (const raw of text.split("\n")) {
    const line = trimGo(raw);
    if (line && !line.startsWith("#")) break;
    if (/^#[ \t]*escape[ \t]*=[ \t]*`/i.test(line)) candidates.push("`");
  }
  return candidates;
}

/**
 * Instructions as Docker's parser splits them: comment lines dropped (also inside a
 * continuation), a line ending in the escape character (then spaces or tabs) continued, and
 * empty continuation lines skipped.
 */
function splitInstructions(text: string, escape: string): Instruction[] {
  const lines = text.split("\n").map((l) => l.replace(/\r$/, ""));
  const continued = new RegExp(`${escape === "\\" ? "\\\\" : escape}[ \\t]*$`);
  const skipped = (l: string) => {
    const t = l.replace(LEADING_SPACE, "");
    return t === "" || t.startsWith("#");
  };
  const out: Instruction[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (skipped(lines[i]!)) continue;
    const start = i;
    let joined = lines[i]!.replace(LEADING_SPACE, "");
    while (continued.test(joined)) {
      joined = joined.replace(continued, "");
      while (i + 1 < lines.length && skipped(lines[i + 1]!)) i++;
      if (i + 1 >= lines.length) break;
      joined += lines[++i]!;
    }
    out.push({ line: start + 1, ...splitCommand(joined) });
  }
  return out;
}

function splitCommand(line: string): { keyword: string; args: string } {
  const trimmed = trimGo(line);
  const match = WORDS.exec(trimmed);
  const keyword = match ? trimmed.slice(0, match.index) : trimmed;
  return { keyword: ASCII.test(keyword) ? keyword.toUpperCase() : keyword, args: match ? trimmed.slice(match.index + match[0].length) : "" };
}

function checkWith(instructions: Instruction[], escape: string): DockerfileCheck {
  const refusals: string[] = [];
  const images: ImageUse[] = [];
  /** Global ARGs (before the first FROM) with a plain default; null: declared, but not something the agent resolves. */
  const metaArgs = new Map<string, string | null>();
  /** Stage names so far, lower-cased ("" for an unnamed stage); a stage's index is its place here. */
  const stages: string[] = [];
  const refuse = (ins: Instruction, why: string) => {
    refusals.push(`line ${ins.line}: ${ins.keyword} ${ins.args.slice(0, 200)}: ${why}`);
  };
  const useImage = (ins: Instruction, ref: string, how: ImageUse["how"]) => {
    const problem = imageRefProblem(ref);
    if (problem) refuse(ins, `${ref} ${problem}`);
    else images.push({ line: ins.line, ref, how });
  };
  /** `known`: the stages up to and with the current one; a COPY may name those before it. */
  const copyFrom = (ins: Instruction, args: string, known: string[]) => {
    const from = extractFlags(args).flags.find((f) => f.startsWith("from="))?.slice("from=".length);
    if (!from) return;
    if (from.includes("$")) return refuse(ins, "COPY --from with a variable, which the agent cannot resolve");
    const index = /^\d+$/.test(from) ? Number(from) : -1;
    // A stage before this one, by name or index; anything else is an image the builder pulls.
    if (known.slice(0, -1).includes(from.toLowerCase()) || (index >= 0 && index < known.length - 1)) return;
    useImage(ins, from, "COPY --from");
  };
  for (const ins of instructions) {
    if (!ASCII.test(ins.keyword)) {
      refuse(ins, "an instruction name that is not plain ASCII, which Docker may read as another instruction");
      continue;
    }
    const ascii = ASCII.test(ins.args);
    switch (ins.keyword) {
      case "ARG":
        if (stages.length) break;
        for (const word of ins.args.split(WORDS).filter(Boolean)) {
          const eq = word.indexOf("=");
          const value = eq === -1 ? null : word.slice(eq + 1);
          metaArgs.set(eq === -1 ? word : word.slice(0, eq), ascii && value !== null && PLAIN_DEFAULT.test(value) ? value : null);
        }
        break;
      case "FROM": {
        if (!ascii) {
          refuse(ins, "characters other than ASCII, which the agent does not read as Docker might");
          stages.push("");
          break;
        }
        const words = trimGo(extractFlags(ins.args).rest).split(WORDS);
        const named = words.length === 3 && words[1]!.toLowerCase() === "as" ? words[2]!.toLowerCase() : "";
        const vars = new Map([...metaArgs].flatMap(([k, v]) => (v === null ? [] : [[k, v] as const])));
        const base = lexWord(words[0] ?? "", escape, vars);
        if (base === null) refuse(ins, "a variable, quoting or escape the agent cannot resolve (only global ARGs with a plain default are substituted)");
        else if (base === "" || (!stages.includes(base.toLowerCase()) && base !== "scratch")) useImage(ins, base, "FROM");
        stages.push(named);
        break;
      }
      case "ADD":
        for (const why of ascii ? addRefusals(ins.args, escape) : ["characters other than ASCII, which the agent does not read as Docker might"]) refuse(ins, why);
        break;
      case "COPY":
        if (!ascii && ins.args.includes("--")) refuse(ins, "characters other than ASCII in a COPY with flags, which the agent does not read as Docker might");
        else copyFrom(ins, ins.args, stages);
        break;
      case "ONBUILD": {
        // Run by a later stage built on this one: checked as if it were that stage's.
        const inner = splitCommand(ins.args);
        if (!ascii) refuse(ins, "characters other than ASCII, which the agent does not read as Docker might");
        else if (inner.keyword === "ADD") for (const why of addRefusals(inner.args, escape)) refuse(ins, why);
        // In the stage that runs it, no stage of this file is known by name or index.
        else if (inner.keyword === "COPY") copyFrom(ins, inner.args, [""]);
        break;
      }
    }
  }
  return { refusals, images };
}

/** Why an ADD's sources may not be fetched: a remote source, or one the agent cannot resolve. */
function addRefusals(args: string, escape: string): string[] {
  const list = jsonOrWords(extractFlags(args).rest);
  const sources = list.length > 1 ? list.slice(0, -1) : list;
  return sources.flatMap((source) => {
    const word = lexWord(source, escape, new Map());
    if (word === null) return [`the source ${source} holds a variable, quoting or escape the agent cannot resolve; use COPY for files of the repository`];
    if (REMOTE_SOURCE.test(word))
      return [`the Docker engine fetches ${word} itself, on the host's network, outside the build's network; add the file to the env repository, or fetch it in a RUN step`];
    return [];
  });
}

/** ADD's and COPY's arguments: a JSON array of strings, else words. */
function jsonOrWords(rest: string): string[] {
  const trimmed = trimGo(rest);
  if (trimmed.startsWith("[")) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (Array.isArray(parsed) && parsed.every((p) => typeof p === "string")) return parsed as string[];
    } catch {
      // Not JSON: Docker reads it as words too.
    }
  }
  return trimmed.split(WORDS).filter(Boolean);
}

/**
 * The leading `--flag[=value]` words of an instruction and the rest, as Docker's
 * extractBuilderFlags reads them (quotes taken off, `\` escaping the next character).
 */
export function extractFlags(line: string): { flags: string[]; rest: string } {
  const flags: string[] = [];
  let pos = 0;
  for (;;) {
    while (pos < line.length && /\s/.test(line[pos]!)) pos++;
    if (!line.startsWith("--", pos)) return { flags, rest: line.slice(pos) };
    let word = "";
    let quote = "";
    for (; pos < line.length; pos++) {
      const ch = line[pos]!;
      if (quote) {
        if (ch === quote) quote = "";
        else if (ch === "\\" && quote !== "'" && pos + 1 < line.length) word += line[++pos];
        else word += ch;
      } else if (/\s/.test(ch)) break;
      else if (ch === "'" || ch === '"') quote = ch;
      else if (ch === "\\" && pos + 1 < line.length) word += line[++pos];
      else if (ch !== "\\") word += ch;
    }
    if (word === "--") return { flags, rest: line.slice(pos) };
    flags.push(word.slice(2));
  }
}

/**
 * A word as Docker's shell lexer reads it: the escape character taking the next one literally,
 * single and double quotes taken off, `$NAME` and `${NAME}` replaced from `vars`. Null for
 * whatever the agent cannot be sure of: another expansion form, a name not in `vars`, an
 * unclosed quote.
 */
export function lexWord(word: string, escape: string, vars: ReadonlyMap<string, string>): string | null {
  let out = "";
  let quote = "";
  for (let i = 0; i < word.length; i++) {
    const ch = word[i]!;
    if (quote === "'") {
      if (ch === "'") quote = "";
      else out += ch;
      continue;
    }
    if (ch === escape) {
      if (i + 1 < word.length) out += word[++i];
      continue;
    }
    if (ch === '"') {
      quote = quote ? "" : '"';
      continue;
    }
    if (ch === "'" && !quote) {
      quote = "'";
      continue;
    }
    if (ch === "$") {
      const m = /^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/.exec(word.slice(i));
      const value = m ? vars.get(m[1] ?? m[2]!) : undefined;
      if (value === undefined) return null;
      out += value;
      i += m![0].length - 1;
      continue;
    }
    out += ch;
  }
  return quote ? null : out;
}
