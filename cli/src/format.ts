/** Human output: aligned tables, relative times, sizes. */

/**
 * Rows under a header, each column as wide as its widest cell, two spaces apart; the last
 * column is not padded.
 *
 * @example
 * table(["ID", "STATUS"], [["j_1", "queued"]]) // "ID   STATUS\nj_1  queued"
 */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => [...(r[i] ?? "")].length)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd()).join("\n");
}

/** `key  value` lines, keys aligned; entries with an undefined value are left out. */
export function keyValues(entries: [string, string | undefined][]): string {
  const shown = entries.filter((e): e is [string, string] => e[1] !== undefined);
  const width = Math.max(...shown.map(([k]) => k.length));
  return shown.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
}

/** A span of milliseconds, short: `850ms`, `4.2s`, `3m04s`, `2h05m`, `3d4h`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.floor(s)}s`;
  const total = Math.floor(s);
  const pad = (n: number) => String(n).padStart(2, "0");
  if (total < 3600) return `${Math.floor(total / 60)}m${pad(total % 60)}s`;
  if (total < 86400) return `${Math.floor(total / 3600)}h${pad(Math.floor((total % 3600) / 60))}m`;
  return `${Math.floor(total / 86400)}d${Math.floor((total % 86400) / 3600)}h`;
}

/** Whole seconds, short and coarse: `12s`, `3m`, `2h`, `4d`. */
const span = (s: number) => (s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : s < 86400 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86400)}d`);

/** How long ago an ISO time was, relative to `now`: `just now`, `12s ago`, `3m ago`, `2h ago`, `4d ago`. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const ms = now - Date.parse(iso);
  if (Number.isNaN(ms)) return "-";
  if (ms < 2000) return "just now";
  return `${span(Math.floor(ms / 1000))} ago`;
}

/** A time that may be ahead, such as an expiry: `in 29d`, `in 5m`, or as `ago` once it has passed. */
export function fromNow(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const ms = Date.parse(iso) - now;
  if (Number.isNaN(ms) || ms <= 0) return ago(iso, now);
  return `in ${span(Math.ceil(ms / 1000))}`;
}

/** Usage against an optional limit: `3/10`, or `3` where there is no limit. */
export function ofLimit(used: number, limit: number | undefined, show: (n: number) => string = String): string {
  return limit === undefined ? show(used) : `${show(used)}/${show(limit)}`;
}

/** Bytes in binary units: `512 B`, `1.5 KiB`, `300.0 MiB`, `2.0 GiB`. */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Megabytes as the API counts them (MiB), short: `512 MiB`, `2 GiB`. */
export function mib(n: number): string {
  return n >= 1024 && n % 1024 === 0 ? `${n / 1024} GiB` : `${n} MiB`;
}

/** `k=v,k=v`, or `-` for none. */
export function labels(l: Record<string, string>): string {
  const entries = Object.entries(l);
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(",") : "-";
}

/**
 * A value as one shell word, quoted only where it must be, for a command line to copy.
 *
 * @example
 * shellWord("a b") // "'a b'"
 */
export const shellWord = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, "'\\''")}'`);
