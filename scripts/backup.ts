/**
 * `npm run backup`: has the control plane back D1 up (POST /v1/backups: every table to R2
 * `backups/YYYY-MM-DD.sql`, the newest BACKUP_KEEP_DAYS kept), downloads that file into a folder
 * and prunes the folder the same way (docs/backups.md).
 *
 *   npm run backup                   the local grid (npm start); when it is not running, a control plane started on its state
 *   npm run backup -- --remote       production: $GRIDX_URL with the admin token $GRIDX_ADMIN_TOKEN
 *
 * Options: --out DIR (backups/), --url URL (a local control plane elsewhere than :$PORT or 8787),
 * --persist-to DIR (.wrangler/state) and --secrets-file FILE (.dev.vars) for the state it starts on.
 */
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebStream } from "node:stream/web";
import { parseArgs } from "node:util";
import { backupsToPrune } from "../control-plane/src/backups/keep.ts";
import { freePort, ROOT, startControlPlane, type ControlPlane } from "./local-grid.ts";

interface Report {
  backup: { name: string; bytes: number };
  tables: number;
  rows: number;
  ms: number;
  keep: number;
  pruned: string[];
}

const { values: opts } = parseArgs({
  options: {
    remote: { type: "boolean", default: false },
    url: { type: "string" },
    out: { type: "string", default: join(ROOT, "backups") },
    "persist-to": { type: "string" },
    "secrets-file": { type: "string", default: join(ROOT, ".dev.vars") },
  },
});

/** A value from a dotenv file such as .dev.vars. */
function dotenvValue(file: string, key: string): string | undefined {
  if (!existsSync(file)) return undefined;
  return new RegExp(`^${key}\\s*=\\s*"?([^"\\n]+)"?`, "m").exec(readFileSync(file, "utf8"))?.[1];
}

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/health`)).ok;
  } catch {
    return false;
  }
}

/** Where to ask, with what token; a local control plane is started on the state when none runs. */
async function target(): Promise<{ url: string; token: string; started?: ControlPlane }> {
  if (opts.remote) {
    const url = process.env.GRIDX_URL;
    const token = process.env.GRIDX_ADMIN_TOKEN;
    if (!url || !token) throw new Error("--remote needs GRIDX_URL (the deployed control plane) and GRIDX_ADMIN_TOKEN (its admin token) in the environment");
    return { url: url.replace(/\/+$/, ""), token };
  }
  const secretsFile = resolve(opts["secrets-file"]!);
  const token = process.env.GRIDX_ADMIN_TOKEN ?? dotenvValue(secretsFile, "GRIDX_ADMIN_TOKEN");
  if (!token) throw new Error(`no admin token: set GRIDX_ADMIN_TOKEN, or run npm start once to write ${secretsFile}`);
  const persistTo = opts["persist-to"] ? resolve(opts["persist-to"]) : undefined;
  const url = (opts.url ?? `http://127.0.0.1:${process.env.PORT ?? 8787}`).replace(/\/+$/, "");
  if (persistTo && opts.url) throw new Error("--url and --persist-to name two different databases: give one");
  // A state named outright is backed up from a control plane of its own, whatever listens on 8787.
  if (!persistTo) {
    if (await answers(url)) return { url, token };
    if (opts.url) throw new Error(`nothing answers at ${url}`);
    console.log(`gridx backup: nothing answers at ${url}`);
  }
  console.log(`gridx backup: starting a control plane on ${persistTo ?? join(ROOT, ".wrangler", "state")} for the backup…`);
  const started = await startControlPlane({ port: await freePort(), adminToken: token, secretsFile, persistTo });
  return { url: started.url, token, started };
}

async function backup(url: string, token: string, outDir: string): Promise<void> {
  const headers = { authorization: `Bearer ${token}` };
  const res = await fetch(`${url}/v1/backups`, { method: "POST", headers });
  if (res.status !== 201) throw new Error(`POST ${url}/v1/backups answered ${res.status}: ${await res.text()}`);
  const report = (await res.json()) as Report;
  const { name, bytes } = report.backup;
  console.log(`gridx backup: ${report.tables} tables, ${report.rows} rows, ${bytes} bytes in ${report.ms} ms, in R2 as backups/${name}`);
  if (report.pruned.length > 0) console.log(`gridx backup: deleted from R2, past the newest ${report.keep}: ${report.pruned.join(", ")}`);

  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, name);
  const partial = `${file}.partial`;
  const got = await fetch(`${url}/v1/backups/${name}`, { headers });
  if (got.status !== 200 || !got.body) throw new Error(`GET ${url}/v1/backups/${name} answered ${got.status}: ${await got.text()}`);
  await pipeline(Readable.fromWeb(got.body as WebStream<Uint8Array>), createWriteStream(partial, { mode: 0o600 }));
  const size = statSync(partial).size;
  if (size !== bytes) throw new Error(`downloaded ${size} bytes of ${name}, R2 holds ${bytes}; ${partial} left for a look`);
  renameSync(partial, file);
  console.log(`gridx backup: written to ${file}`);
  const gone = backupsToPrune(readdirSync(outDir), report.keep);
  for (const old of gone) unlinkSync(join(outDir, old));
  if (gone.length > 0) console.log(`gridx backup: deleted from ${outDir}, past the newest ${report.keep}: ${gone.join(", ")}`);
}

async function main() {
  const { url, token, started } = await target();
  try {
    await backup(url, token, resolve(opts.out!));
  } finally {
    await started?.stop();
  }
}

main().catch((err: unknown) => {
  console.error(`gridx backup: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
