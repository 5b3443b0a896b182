/**
 * `npm run setup:cloudflare`: takes an empty Cloudflare account to a running gridx, as far as
 * wrangler allows, and says what it did and what is left (README "Deploy to Cloudflare").
 *
 * Idempotent: a second run finds the database, the bucket and the secrets and changes nothing it
 * does not have to. It never replaces a secret the Worker already has: a new SECRETS_KEY would
 * leave every sealed project secret unreadable, a new admin token would lock the operator out.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs as parseFlags } from "node:util";
import { newSecretsKey } from "./local-grid.ts";

const ROOT = join(fileURLToPath(new URL(".", import.meta.url)), "..");
const UNSET_DATABASE_ID = "00000000-0000-0000-0000-000000000000";
/** Secrets the script can make itself; the S3 keys come from an R2 API token, made in the dashboard. */
const GENERATED = ["GRIDX_ADMIN_TOKEN", "SECRETS_KEY"] as const;
const S3_KEYS = ["S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"] as const;

export interface Options {
  config: string;
  secretsFile: string;
  dryRun: boolean;
  deploy: boolean;
}

export function parseArgs(argv: string[]): Options {
  const { values } = parseFlags({
    args: argv,
    options: { "dry-run": { type: "boolean" }, "no-deploy": { type: "boolean" }, config: { type: "string" }, "secrets-file": { type: "string" } },
  });
  return { config: values.config ?? join(ROOT, "wrangler.toml"), secretsFile: values["secrets-file"] ?? join(ROOT, ".prod.vars"), dryRun: values["dry-run"] ?? false, deploy: !values["no-deploy"] };
}

/** The `database_name`, `bucket_name` and Worker `name` wrangler.toml names. */
export function readNames(toml: string): { worker: string; database: string; bucket: string; databaseId: string; s3Endpoint: string } {
  const get = (re: RegExp) => re.exec(toml)?.[1] ?? "";
  return {
    worker: get(/^name\s*=\s*"([^"]+)"/m),
    database: get(/^database_name\s*=\s*"([^"]+)"/m),
    databaseId: get(/^database_id\s*=\s*"([^"]*)"/m),
    bucket: get(/^bucket_name\s*=\s*"([^"]+)"/m),
    s3Endpoint: get(/^S3_ENDPOINT\s*=\s*"([^"]*)"/m),
  };
}

/** wrangler.toml with the database id and the S3 endpoint filled in; every other line as it was. */
export function patchToml(toml: string, values: { databaseId?: string; s3Endpoint?: string }): string {
  let out = toml;
  if (values.databaseId) out = out.replace(/^(database_id\s*=\s*)"[^"]*"/m, `$1"${values.databaseId}"`);
  if (values.s3Endpoint) out = out.replace(/^(S3_ENDPOINT\s*=\s*)"[^"]*"/m, `$1"${values.s3Endpoint}"`);
  return out;
}

/** The id of the database called `name` in `wrangler d1 list --json`'s output. */
export function databaseIdIn(listJson: string, name: string): string | undefined {
  const list = JSON.parse(listJson) as { name: string; uuid: string }[];
  return list.find((d) => d.name === name)?.uuid;
}

/** The id `wrangler d1 create` printed (its config snippet, TOML or JSON). */
export function createdDatabaseId(output: string): string | undefined {
  return /"?database_id"?\s*[=:]\s*"([0-9a-f-]{36})"/.exec(output)?.[1];
}

/** Bucket names in `wrangler r2 bucket list`'s output (`name: gridx` lines). */
export function bucketNames(output: string): string[] {
  return [...output.matchAll(/^name:\s*(\S+)/gm)].map((m) => m[1] ?? "");
}

/** The account id in `wrangler whoami --json`: the one account, or CLOUDFLARE_ACCOUNT_ID's. */
export function accountId(whoamiJson: string, chosen: string | undefined): string {
  const accounts = (JSON.parse(whoamiJson) as { accounts?: { id: string; name: string }[] }).accounts ?? [];
  if (chosen) return chosen;
  if (accounts.length === 1 && accounts[0]) return accounts[0].id;
  throw new Error(`this login sees ${accounts.length} accounts (${accounts.map((a) => `${a.name}: ${a.id}`).join(", ")}); set CLOUDFLARE_ACCOUNT_ID to one`);
}

/** The workers.dev (or route) URL `wrangler deploy` printed. */
export function deployedUrl(output: string): string | undefined {
  return /https:\/\/[^\s]+\.workers\.dev/.exec(output)?.[0];
}

export function readVars(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [, key = "", value = ""] of text.matchAll(/^([A-Z0-9_]+)\s*=\s*"?([^"\n]*)"?\s*$/gm)) vars[key] = value;
  return vars;
}

export const writeVars = (vars: Record<string, string>) =>
  Object.entries(vars)
    .map(([k, v]) => `${k}="${v}"`)
    .join("\n") + "\n";

/**
 * Which secrets this run uploads and which it makes: a secret in the local file goes up as it is;
 * one the Worker has and the file lacks stays as it is; one neither has is generated (the S3 keys
 * come from the environment, or are left to the operator).
 */
export function planSecrets(local: Record<string, string>, remote: Set<string>, env: Record<string, string | undefined>, generate: (name: string) => string): { upload: Record<string, string>; generated: string[]; missing: string[] } {
  const upload: Record<string, string> = { ...local };
  const generated: string[] = [];
  const missing: string[] = [];
  for (const name of GENERATED) {
    if (upload[name] || remote.has(name)) continue;
    upload[name] = generate(name);
    generated.push(name);
  }
  for (const name of S3_KEYS) {
    if (env[name]) upload[name] = env[name]!;
    else if (!upload[name] && !remote.has(name)) missing.push(name);
  }
  return { upload, generated, missing };
}

interface Run {
  (args: string[], opts?: { mutates?: boolean }): Promise<{ code: number; out: string; message: string }>;
}

function wranglerRunner(dryRun: boolean, log: (line: string) => void): Run {
  return (args, opts = {}) => {
    if (dryRun && opts.mutates) {
      log(`  would run: wrangler ${args.join(" ")}`);
      return Promise.resolve({ code: 0, out: "", message: "" });
    }
    return new Promise((resolve) => {
      const child = spawn("wrangler", args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WRANGLER_SEND_METRICS: "false" } });
      // stdout alone is parsed (wrangler warns on stderr); a failure's message has both.
      let out = "";
      let err = "";
      child.stdout.on("data", (b: Buffer) => (out += b.toString()));
      child.stderr.on("data", (b: Buffer) => (err += b.toString()));
      child.on("error", (e) => resolve({ code: 127, out: "", message: e.message }));
      child.on("close", (code) => resolve({ code: code ?? 1, out, message: (err + out).trim() }));
    });
  };
}

export async function setup(opts: Options, log: (line: string) => void = console.log): Promise<{ done: string[]; left: string[] }> {
  const done: string[] = [];
  const left: string[] = [];
  const wrangler = wranglerRunner(opts.dryRun, log);
  let toml = readFileSync(opts.config, "utf8");
  const names = readNames(toml);

  const who = await wrangler(["whoami", "--json"]);
  if (who.code !== 0) throw new Error("wrangler is not logged in: run `npx wrangler login` (or set CLOUDFLARE_API_TOKEN) and run this again");
  const account = accountId(who.out, process.env.CLOUDFLARE_ACCOUNT_ID);
  done.push(`logged in to account ${account}`);

  // D1: reuse the database of that name, or create it; its id goes into wrangler.toml.
  const listed = await wrangler(["d1", "list", "--json"]);
  if (listed.code !== 0) throw new Error(`wrangler d1 list failed: ${listed.message}`);
  let databaseId = databaseIdIn(listed.out, names.database);
  if (databaseId) done.push(`D1 database ${names.database} exists (${databaseId})`);
  else {
    const created = await wrangler(["d1", "create", names.database], { mutates: true });
    if (created.code !== 0) throw new Error(`wrangler d1 create ${names.database} failed: ${created.message}`);
    databaseId = opts.dryRun ? "<new database id>" : createdDatabaseId(created.out);
    if (!databaseId) throw new Error(`wrangler d1 create printed no database_id: ${created.message}`);
    done.push(`created D1 database ${names.database} (${databaseId})`);
  }

  const buckets = await wrangler(["r2", "bucket", "list"]);
  if (buckets.code !== 0) throw new Error(`wrangler r2 bucket list failed (is R2 enabled on the account?): ${buckets.message}`);
  if (bucketNames(buckets.out).includes(names.bucket)) done.push(`R2 bucket ${names.bucket} exists`);
  else {
    const created = await wrangler(["r2", "bucket", "create", names.bucket], { mutates: true });
    if (created.code !== 0) throw new Error(`wrangler r2 bucket create ${names.bucket} failed: ${created.message}`);
    done.push(`created R2 bucket ${names.bucket}`);
  }

  const s3Endpoint = names.s3Endpoint || `https://${account}.r2.cloudflarestorage.com`;
  const patched = patchToml(toml, { databaseId: names.databaseId === UNSET_DATABASE_ID || !names.databaseId ? databaseId : undefined, s3Endpoint: names.s3Endpoint ? undefined : s3Endpoint });
  if (patched !== toml) {
    if (opts.dryRun) log(`  would write database_id and S3_ENDPOINT into ${opts.config}`);
    else writeFileSync(opts.config, patched);
    toml = patched;
    done.push(`wrote database_id and S3_ENDPOINT (${s3Endpoint}) into ${opts.config}: commit it in your deployment's copy`);
  }

  // Secrets: the Worker's own list (empty before the first deploy) against the local file.
  const remoteList = await wrangler(["secret", "list", "--format", "json"]);
  const remote = new Set<string>(remoteList.code === 0 ? (JSON.parse(remoteList.out) as { name: string }[]).map((s) => s.name) : []);
  const local = existsSync(opts.secretsFile) ? readVars(readFileSync(opts.secretsFile, "utf8")) : {};
  const secrets = planSecrets(local, remote, process.env, (name) => (name === "SECRETS_KEY" ? newSecretsKey() : "gxadmin_" + randomBytes(24).toString("base64url")));
  if (secrets.generated.length) {
    if (opts.dryRun) log(`  would generate ${secrets.generated.join(", ")} into ${opts.secretsFile}`);
    else writeFileSync(opts.secretsFile, writeVars(secrets.upload), { mode: 0o600 });
    done.push(`generated ${secrets.generated.join(" and ")} into ${opts.secretsFile} (mode 600, git-ignored): keep it; losing SECRETS_KEY loses every sealed project secret`);
  } else if (Object.keys(secrets.upload).length && !opts.dryRun) writeFileSync(opts.secretsFile, writeVars(secrets.upload), { mode: 0o600 });
  for (const name of secrets.missing)
    left.push(`${name}: create an R2 API token (dashboard > R2 > Manage API tokens, Object Read & Write on bucket ${names.bucket}), then run again with S3_ACCESS_KEY_ID=... S3_SECRET_ACCESS_KEY=... in the environment`);

  const migrated = await wrangler(["d1", "migrations", "apply", "DB", "--remote"], { mutates: true });
  if (migrated.code !== 0) throw new Error(`applying the D1 migrations failed: ${migrated.message}`);
  done.push("applied the D1 migrations (--remote)");

  if (!opts.deploy) left.push("deploy: `npm run deploy` (this run had --no-deploy)");
  else {
    const upload = Object.keys(secrets.upload).length ? ["--secrets-file", opts.secretsFile] : [];
    const deployed = await wrangler(["deploy", ...upload], { mutates: true });
    if (deployed.code !== 0) throw new Error(`wrangler deploy failed: ${deployed.message}`);
    // The URL to check: the custom domain the operator routes (GRIDX_URL), or workers.dev's.
    const url = process.env.GRIDX_URL?.replace(/\/$/, "") || deployedUrl(deployed.out);
    done.push(`deployed ${names.worker}${url ? ` at ${url}` : ""}${upload.length ? `, with the secrets ${Object.keys(secrets.upload).join(", ")}` : ""}`);
    const token = secrets.upload.GRIDX_ADMIN_TOKEN;
    if (url && token && !opts.dryRun) {
      const failed = await deepHealthFailures(url, token);
      if (failed === undefined) left.push(`check ${url}/health?deep=1 with the admin token: it did not answer yet`);
      else if (failed.length === 0) done.push("GET /health?deep=1 passes every check");
      else for (const check of failed) left.push(`health ${check.name}: ${check.message}`);
    }
  }
  left.push('a custom domain: add `routes = [{ pattern = "grid.example.com", custom_domain = true }]` to wrangler.toml and deploy again');
  left.push("PORTS_DOMAIN (optional, docs/sessions.md): a wildcard DNS record and route *.ports.example.com/* to this Worker");
  return { done, left };
}

async function deepHealthFailures(url: string, token: string): Promise<{ name: string; message: string }[] | undefined> {
  try {
    const res = await fetch(`${url}/health?deep=1`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(15_000) });
    const body = (await res.json()) as { checks?: { name: string; ok: boolean; message: string }[] };
    return (body.checks ?? []).filter((c) => !c.ok);
  } catch {
    return undefined;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    const opts = parseArgs(process.argv.slice(2));
    const { done, left } = await setup(opts);
    console.log(`\n${opts.dryRun ? "Would do" : "Done"}:`);
    for (const line of done) console.log(`  - ${line}`);
    console.log("\nLeft to you:");
    for (const line of left) console.log(`  - ${line}`);
  } catch (err) {
    console.error(`setup:cloudflare: ${(err as Error).message}`);
    process.exit(1);
  }
}
