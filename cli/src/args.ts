import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { UsageError } from "./errors.ts";

/**
 * Parses a command's flags strictly (an unknown flag is a usage error that points at
 * `--help`), with positionals anywhere.
 */
export function parseFlags<O extends ParseArgsOptionsConfig>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.replace(/\. To specify a positional argument starting with a '-'.*$/s, "")}; see \`gridx ${command} --help\``);
  }
}

/**
 * Splits `[gridx flags] PROGRAM [its args]` at the program: the flags end at `--` or at the
 * first argument that is not a flag (or a flag's value), and everything after belongs to the
 * job, flags included, like `docker run IMAGE ARGS`.
 *
 * @example
 * splitAtProgram(["--pool", "gpu", "train.py", "--lr", "0.1"], options) // { flags: ["--pool", "gpu"], program: ["train.py", "--lr", "0.1"] }
 */
export function splitAtProgram(args: string[], options: ParseArgsOptionsConfig): { flags: string[]; program: string[] } {
  const takesValue = (token: string): boolean => {
    if (token.startsWith("--")) {
      if (token.includes("=")) return false;
      return options[token.slice(2)]?.type === "string";
    }
    // A short flag, possibly with its value attached (-o FILE or -oFILE).
    const short = token.slice(1, 2);
    const entry = Object.values(options).find((o) => o.short === short);
    return entry?.type === "string" && token.length === 2;
  };
  for (let i = 0; i < args.length; i++) {
    const token = args[i]!;
    if (token === "--") return { flags: args.slice(0, i), program: args.slice(i + 1) };
    if (token.startsWith("-") && token.length > 1) {
      if (takesValue(token)) i++;
      continue;
    }
    return { flags: args.slice(0, i), program: args.slice(i) };
  }
  return { flags: args, program: [] };
}

/** A whole number, for a flag; bounds, when given, are checked too (else the server checks them). */
export function integer(flag: string, raw: string, min = -Infinity, max = Infinity): number {
  const n = Number(raw);
  const range = Number.isFinite(min) && Number.isFinite(max) ? ` from ${min} to ${max}` : "";
  if (!/^-?\d+$/.test(raw.trim()) || n < min || n > max) throw new UsageError(`${flag} takes a whole number${range}, not "${raw}"`);
  return n;
}

/** A positive number, for a flag such as --cpus 0.5. */
export function decimal(flag: string, raw: string): number {
  const n = Number(raw);
  if (!raw.trim() || !Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} takes a positive number such as 2 or 0.5, not "${raw}"`);
  return n;
}

const SIZE_UNITS: Record<string, number> = { "": 1, k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 };

/**
 * A memory size in MiB: a bare number is MiB; `k`, `m`, `g`, `t` (with or without `b`, `ib`,
 * any case) scale it.
 *
 * @example
 * memoryMb("--memory", "2g") // 2048
 */
export function memoryMb(flag: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(raw.trim());
  const mb = m ? Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]! : NaN;
  if (!Number.isInteger(mb) || mb <= 0) throw new UsageError(`${flag} takes a size such as 512m, 2g or 512 (MiB), a whole number of MiB, not "${raw}"`);
  return mb;
}

const BYTE_UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * A size in bytes: a bare number is bytes; `k`, `m`, `g`, `t`, `p` (with or without `b`, `ib`,
 * any case) are powers of 1024.
 *
 * @example
 * byteSize("--max-dataset-bytes", "500g") // 536870912000
 */
export function byteSize(flag: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$/i.exec(raw.trim());
  const n = m ? Number(m[1]) * BYTE_UNITS[m[2]!.toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(n)) throw new UsageError(`${flag} takes a size such as 500g, 2t or 1048576 (bytes), a whole number of bytes, not "${raw}"`);
  return n;
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * A duration in seconds: a bare number is seconds; otherwise parts such as `90s`, `10m`,
 * `1h30m`, `2d`.
 *
 * @example
 * seconds("--timeout", "1h30m") // 5400
 */
export function seconds(flag: string, raw: string): number {
  const text = raw.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const parts = [...text.matchAll(/(\d+)([smhd])/gi)];
  if (!parts.length || parts.map((p) => p[0]).join("") !== text) throw new UsageError(`${flag} takes a duration such as 90, 90s, 10m, 1h30m or 2d, not "${raw}"`);
  return parts.reduce((n, p) => n + Number(p[1]) * DURATION_UNITS[p[2]!.toLowerCase()]!, 0);
}

/** `KEY=VALUE` pairs of a repeated flag, as an object. */
export function pairs(flag: string, raws: string[], fallback?: (key: string) => string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of raws) {
    const eq = raw.indexOf("=");
    if (eq === 0) throw new UsageError(`${flag} takes KEY=VALUE, not "${raw}"`);
    if (eq < 0) {
      // `--env NAME` passes the variable on from gridx's own environment, as `docker run -e NAME` does.
      const value = fallback?.(raw);
      if (value === undefined) throw new UsageError(`${flag} takes KEY=VALUE, not "${raw}"${fallback ? ` (and ${raw} is not set here)` : ""}`);
      out[raw] = value;
      continue;
    }
    out[raw.slice(0, eq)] = raw.slice(eq + 1);
  }
  return out;
}
