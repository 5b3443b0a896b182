// `npm run setup:cloudflare` against a stand-in wrangler (Cloudflare's API is not reachable from
// here): what it creates on an empty account, that a second run changes nothing, that it never
// replaces a secret the Worker has, and that the deep health check's failures are what is left.
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accountId, bucketNames, createdDatabaseId, databaseIdIn, patchToml, planSecrets, readNames } from "../../scripts/setup-cloudflare.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SCRIPT = join(ROOT, "scripts", "setup-cloudflare.ts");
const TSX = join(ROOT, "node_modules", "tsx", "dist", "loader.mjs");

interface Account {
  loggedIn: boolean;
  account: string;
  databases: { name: string; uuid: string }[];
  buckets: string[];
  secrets: Record<string, string>;
  deployed: boolean;
  migrated?: boolean;
  calls: string[];
}

function workspace(account: Partial<Account> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "gridx-setup-cf-"));
  const bin = join(dir, "bin");
  mkdirSync(bin);
  symlinkSync(join(ROOT, "test", "scripts", "fake-wrangler.mjs"), join(bin, "wrangler"));
  copyFileSync(join(ROOT, "wrangler.toml"), join(dir, "wrangler.toml"));
  const state = join(dir, "account.json");
  writeFileSync(state, JSON.stringify({ loggedIn: true, account: "acc123", databases: [], buckets: [], secrets: {}, deployed: false, calls: [], ...account }));
  const run = (args: string[] = [], env: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ["--import", TSX, SCRIPT, "--config", join(dir, "wrangler.toml"), "--secrets-file", join(dir, ".prod.vars"), ...args], {
        env: { PATH: `${bin}:${process.env.PATH}`, HOME: dir, FAKE_WRANGLER_STATE: state, ...env },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
      child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
      child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
  const readAccount = () => JSON.parse(readFileSync(state, "utf8")) as Account;
  const toml = () => readFileSync(join(dir, "wrangler.toml"), "utf8");
  const secretsFile = () => readFileSync(join(dir, ".prod.vars"), "utf8");
  return { dir, run, account: readAccount, toml, secretsFile, secretsPath: join(dir, ".prod.vars") };
}

/** A deployed Worker's deep health check, as the script reads it. */
let health: Server;
let healthUrl = "";
let seenAuth = "";
beforeAll(async () => {
  health = createServer((req, res) => {
    seenAuth = req.headers.authorization ?? "";
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ ok: false, checks: [{ name: "secrets_key", ok: true, message: "32 bytes" }, { name: "s3", ok: false, message: "S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY not set" }] }));
  });
  await new Promise<void>((resolve) => health.listen(0, "127.0.0.1", resolve));
  healthUrl = `http://127.0.0.1:${(health.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((resolve) => health.close(() => resolve())));

describe("setup:cloudflare on an empty account", () => {
  it("creates the database and the bucket, fills wrangler.toml, generates the secrets, migrates and deploys, and says what is left", async () => {
    const w = workspace();
    const result = await w.run([], { GRIDX_URL: healthUrl });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const account = w.account();
    expect(account.databases.map((d) => d.name)).toEqual(["gridx"]);
    expect(account.buckets).toEqual(["gridx"]);
    expect(account.migrated).toBe(true);
    expect(readNames(w.toml())).toMatchObject({ databaseId: account.databases[0]?.uuid, s3Endpoint: "https://acc123.r2.cloudflarestorage.com" });
    // The secrets went up with the deploy, and are kept locally, readable by this user only.
    expect(Object.keys(account.secrets).sort()).toEqual(["GRIDX_ADMIN_TOKEN", "SECRETS_KEY"]);
    expect(Buffer.from(account.secrets.SECRETS_KEY ?? "", "base64")).toHaveLength(32);
    expect(w.secretsFile()).toContain(`GRIDX_ADMIN_TOKEN="${account.secrets.GRIDX_ADMIN_TOKEN}"`);
    expect(statSync(w.secretsPath).mode & 0o777).toBe(0o600);
    expect(seenAuth).toBe(`Bearer ${account.secrets.GRIDX_ADMIN_TOKEN}`);
    // What wrangler cannot do is left, named; so is the deep check's failure.
    const left = result.stdout.slice(result.stdout.indexOf("Left to you:"));
    expect(left).toContain("S3_ACCESS_KEY_ID: create an R2 API token");
    expect(left).toContain("health s3: S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY not set");
    expect(left).toContain("custom domain");
    expect(result.stdout).not.toContain(account.secrets.GRIDX_ADMIN_TOKEN);
    expect(result.stdout).not.toContain(account.secrets.SECRETS_KEY);
  });

  it("is idempotent: a second run creates nothing, keeps the secrets and takes the S3 keys from the environment", async () => {
    const w = workspace();
    expect((await w.run()).code).toBe(0);
    const first = w.account();
    const toml = w.toml();
    const result = await w.run([], { S3_ACCESS_KEY_ID: "r2-key-id", S3_SECRET_ACCESS_KEY: "r2-secret" });
    expect(result.code).toBe(0);
    const second = w.account();
    const after = second.calls.slice(first.calls.length);
    expect(after.filter((c) => c.includes("create"))).toEqual([]);
    expect(second.databases).toEqual(first.databases);
    expect(w.toml()).toBe(toml);
    expect(second.secrets).toEqual({ ...first.secrets, S3_ACCESS_KEY_ID: "r2-key-id", S3_SECRET_ACCESS_KEY: "r2-secret" });
    expect(result.stdout).toContain("D1 database gridx exists");
    expect(result.stdout).not.toContain("S3_ACCESS_KEY_ID: create");
  });

  it("never replaces a secret the Worker already has", async () => {
    const w = workspace({ deployed: true, secrets: { SECRETS_KEY: "the-key-that-seals-everything" }, databases: [{ name: "gridx", uuid: "11111111-2222-4333-8444-555555555555" }], buckets: ["gridx"] });
    expect((await w.run()).code).toBe(0);
    const account = w.account();
    expect(account.secrets.SECRETS_KEY).toBe("the-key-that-seals-everything");
    expect(w.secretsFile()).not.toContain("SECRETS_KEY");
    expect(w.secretsFile()).toContain("GRIDX_ADMIN_TOKEN=");
    expect(readNames(w.toml()).databaseId).toBe("11111111-2222-4333-8444-555555555555");
  });

  it("--dry-run reads the account and changes nothing", async () => {
    const w = workspace();
    const toml = w.toml();
    const result = await w.run(["--dry-run"]);
    expect(result.code).toBe(0);
    const account = w.account();
    expect(account.calls).toEqual(["whoami --json", "d1 list --json", "r2 bucket list", "secret list --format json"]);
    expect(w.toml()).toBe(toml);
    expect(result.stdout).toContain("would run: wrangler d1 create gridx");
    expect(result.stdout).toContain("would run: wrangler deploy");
  });

  it("stops, saying how to log in, when wrangler is not logged in", async () => {
    const w = workspace({ loggedIn: false });
    const result = await w.run();
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("wrangler login");
    expect(w.account().calls).toEqual(["whoami --json"]);
  });
});

describe("setup:cloudflare's parsing", () => {
  it("reads wrangler's outputs", () => {
    expect(databaseIdIn(JSON.stringify([{ name: "other", uuid: "a" }, { name: "gridx", uuid: "b" }]), "gridx")).toBe("b");
    expect(createdDatabaseId('{ "d1_databases": [{ "binding": "DB", "database_id": "5a1b2c3d-0000-4000-8000-000000000000" }] }')).toBe("5a1b2c3d-0000-4000-8000-000000000000");
    expect(bucketNames("name:           gridx\ncreation_date:  x\n\nname:           logs\n")).toEqual(["gridx", "logs"]);
    expect(() => accountId(JSON.stringify({ accounts: [{ id: "a", name: "A" }, { id: "b", name: "B" }] }), undefined)).toThrow(/CLOUDFLARE_ACCOUNT_ID/);
    expect(accountId(JSON.stringify({ accounts: [{ id: "a", name: "A" }, { id: "b", name: "B" }] }), "b")).toBe("b");
  });

  it("patches only the two lines it owns", () => {
    const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
    const patched = patchToml(toml, { databaseId: "11111111-2222-4333-8444-555555555555", s3Endpoint: "https://x.r2.cloudflarestorage.com" });
    const changed = patched.split("\n").filter((line, i) => line !== toml.split("\n")[i]);
    expect(changed).toEqual(['database_id = "11111111-2222-4333-8444-555555555555"', 'S3_ENDPOINT = "https://x.r2.cloudflarestorage.com"']);
  });

  it("plans secrets: local ones go up, the Worker's stay, the rest are generated or left", () => {
    const plan = planSecrets({ GRIDX_ADMIN_TOKEN: "t" }, new Set(["SECRETS_KEY", "S3_ACCESS_KEY_ID"]), {}, (n) => `new-${n}`);
    expect(plan).toEqual({ upload: { GRIDX_ADMIN_TOKEN: "t" }, generated: [], missing: ["S3_SECRET_ACCESS_KEY"] });
    expect(planSecrets({}, new Set(), { S3_ACCESS_KEY_ID: "k", S3_SECRET_ACCESS_KEY: "s" }, (n) => `new-${n}`).generated).toEqual(["GRIDX_ADMIN_TOKEN", "SECRETS_KEY"]);
  });
});
