/**
 * `npm run restore FILE`: replays a backup (`npm run backup`'s file, or one downloaded from R2
 * backups/) into a local D1 database, the one `npm start` and `wrangler dev` run on. It refuses a
 * database that holds tables unless told --force, which drops them first (docs/backups.md).
 *
 *   npm run restore backups/2026-12-02.sql [-- --persist-to DIR] [-- --force]
 *
 * Stop the control plane on that state first. Secrets come back sealed: the control plane that
 * runs on the restored database needs the SECRETS_KEY they were sealed with.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { parseArgs } from "node:util";
import { BIN, ROOT, wranglerEnv } from "./local-grid.ts";

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: { "persist-to": { type: "string" }, force: { type: "boolean", default: false } },
});

const persistTo = opts["persist-to"] ? resolve(opts["persist-to"]) : undefined;
const where = persistTo ?? join(ROOT, ".wrangler", "state");

/** `wrangler d1 execute DB --local`, on the chosen state; its JSON answer (one entry per statement). */
async function d1(what: ["--command", string] | ["--file", string]): Promise<{ results: Record<string, unknown>[] }[]> {
  const args = ["d1", "execute", "DB", "--local", "--json", ...(persistTo ? ["--persist-to", persistTo] : []), ...what];
  try {
    const { stdout } = await promisify(execFile)(join(BIN, "wrangler"), args, { cwd: ROOT, env: { ...process.env, ...wranglerEnv() }, maxBuffer: 64 * 1024 * 1024 });
    return JSON.parse(stdout) as { results: Record<string, unknown>[] }[];
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`wrangler ${args.join(" ")} failed: ${e.stdout || e.stderr || e.message}`, { cause: err });
  }
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** The database's own tables and views (not SQLite's or D1's internal ones). */
async function contents(): Promise<{ type: string; name: string }[]> {
  const [out] = await d1(["--command", "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY rowid"]);
  return (out?.results ?? []) as { type: string; name: string }[];
}

/** Runs SQL text from a file of its own (wrangler reads statements from a file). */
async function runSql(sql: string) {
  const dir = mkdtempSync(join(tmpdir(), "gridx-restore-"));
  try {
    writeFileSync(join(dir, "run.sql"), sql);
    await d1(["--file", join(dir, "run.sql")]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const [file, ...extra] = positionals;
  if (!file || extra.length > 0) throw new Error("usage: npm run restore FILE [-- --persist-to DIR] [-- --force]");
  const path = resolve(file);
  if (!existsSync(path)) throw new Error(`no file ${path}`);

  const before = await contents();
  if (before.length > 0) {
    const names = before.map((t) => t.name);
    if (!opts.force) throw new Error(`the local database at ${where} is not empty (${names.length} tables: ${names.slice(0, 5).join(", ")}${names.length > 5 ? ", …" : ""}); restore into a fresh state (--persist-to DIR), or pass --force to drop what it holds first`);
    const drops = [...before].reverse().map((t) => `DROP ${t.type === "view" ? "VIEW" : "TABLE"} IF EXISTS ${ident(t.name)};`);
    // AUTOINCREMENT counters outlive their tables; the restored rows set them again.
    const sequences = (await d1(["--command", "SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'"]))[0]?.results.length ? ["DELETE FROM sqlite_sequence;"] : [];
    await runSql(["PRAGMA defer_foreign_keys = TRUE;", ...drops, ...sequences].join("\n") + "\n");
    console.log(`gridx restore: --force: dropped ${names.length} tables and views from ${where}: ${names.join(", ")}`);
  }

  const started = Date.now();
  await d1(["--file", path]);
  const after = (await contents()).filter((t) => t.type === "table");
  // One row of counts: D1 allows few terms in a compound SELECT, so not a UNION of one per table.
  const [counted] = (await d1(["--command", `SELECT ${after.map((t) => `(SELECT COUNT(*) FROM ${ident(t.name)}) AS ${ident(t.name)}`).join(", ")}`]))[0]?.results ?? [];
  const counts = Object.entries(counted ?? {}).map(([name, n]) => ({ name, n: Number(n) }));
  const rows = counts.reduce((sum, c) => sum + c.n, 0);
  console.log(`gridx restore: replayed ${path} (${statSync(path).size} bytes) into the local database at ${where} in ${Date.now() - started} ms: ${after.length} tables, ${rows} rows`);
  console.log(`  ${counts.filter((c) => c.n > 0).map((c) => `${c.name} ${c.n}`).join(", ")}`);
  console.log("gridx restore: start the control plane on it (npm start) with the SECRETS_KEY the secrets were sealed with; without it they cannot be opened.");
}

main().catch((err: unknown) => {
  console.error(`gridx restore: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
