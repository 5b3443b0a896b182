import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readResponse } from "../helpers/http.ts";
import { pollUntil } from "../helpers/poll.ts";
import { backupName } from "../../control-plane/src/backups/keep.ts";
import { freePort, issueAgentToken, runCommand, startAgent, startControlPlane, wranglerEnv, BIN, type AgentProcess, type ControlPlane } from "../../scripts/local-grid.ts";
import { E2E_VARS } from "./global-setup.ts";
import { cp, ownControlPlane, uniqueName } from "./helpers.ts";

const npm = (script: string, args: string[], env: Record<string, string> = {}) => runCommand("npm", ["run", "--silent", script, "--", ...args], { env });

/** What a command printed when it failed: runCommand rejects with it. */
const failureOf = (p: Promise<string>) => p.then(
  (out) => {
    throw new Error(`expected a failure, got: ${out}`);
  },
  (err: Error) => err.message,
);

async function d1Query(persistTo: string, sql: string): Promise<Record<string, unknown>[]> {
  const out = await runCommand(join(BIN, "wrangler"), ["d1", "execute", "DB", "--local", "--json", "--persist-to", persistTo, "--command", sql], { env: wranglerEnv() });
  // runCommand returns stdout and stderr together; the JSON is the one array in it.
  return JSON.parse(out.slice(out.indexOf("[\n"), out.lastIndexOf("]") + 1))[0].results;
}

describe("backup and restore, through wrangler dev, R2, a real agent and Docker", () => {
  it("brings back the jobs, the tokens (they still authenticate) and the secrets (still sealed, still usable) into a fresh database", { timeout: 420_000 }, async () => {
    const dir = mkdtempSync(join(cp().stateDir, "backup-"));
    const port = await freePort();
    const pool = uniqueName("backup");
    const project = uniqueName("bk");
    const value = `sk-${randomBytes(16).toString("hex")}`;
    const digest = createHash("sha256").update(value).digest("hex");
    // The job proves it read the secret by its digest: the value itself is masked in its output.
    const script = "import hashlib, os\nprint(hashlib.sha256(os.environ['API_KEY'].encode()).hexdigest())";
    let plane: ControlPlane = await ownControlPlane(dir, port);
    let agent: AgentProcess | undefined;
    const call = async (path: string, init: { method?: string; json?: unknown; token?: string } = {}) =>
      readResponse(
        await fetch(plane.url + path, {
          method: init.method,
          headers: { authorization: `Bearer ${init.token ?? plane.adminToken}`, ...(init.json ? { "content-type": "application/json" } : {}) },
          body: init.json ? JSON.stringify(init.json) : undefined,
        }),
      );
    const waitDone = (id: string, token?: string) => pollUntil(async () => (await call(`/v1/jobs/${id}`, { token })).json, (j) => ["completed", "failed", "canceled"].includes(j?.status), { timeoutMs: 90_000, intervalMs: 200, what: `job ${id}` });

    try {
      // The data: a project, a member with an API token, a secret, an agent token and a job that ran.
      expect((await call("/v1/projects", { method: "POST", json: { name: project } })).status).toBe(201);
      const user = uniqueName("alice");
      expect((await call("/v1/users", { method: "POST", json: { name: user } })).status).toBe(201);
      expect((await call(`/v1/projects/${project}/members/${user}`, { method: "PUT", json: { role: "owner" } })).status).toBe(200);
      const apiToken = (await call("/v1/api-tokens", { method: "POST", json: { name: "laptop", user } })).json.token as string;
      expect((await call(`/v1/projects/${project}/secrets/api-key`, { method: "PUT", json: { value }, token: apiToken })).status).toBe(200);
      const agentToken = await issueAgentToken(plane, "bk-node", pool);
      agent = startAgent({ url: plane.url, token: agentToken, name: "bk-node", stateDir: join(dir, "agent") });
      const job = (await call("/v1/jobs", { method: "POST", token: apiToken, json: { kind: "python", pool, project, python: { script }, secrets: { API_KEY: "api-key" } } })).json;
      expect(await waitDone(job.id, apiToken)).toMatchObject({ status: "completed", stdout: `${digest}\n` });
      await agent.stop("SIGTERM");

      // Older files in the backups folder: the backup keeps the newest 7 days there, as in R2.
      const out = join(dir, "backups");
      mkdirSync(out);
      for (let d = 1; d <= 8; d++) writeFileSync(join(out, `2020-01-0${d}.sql`), "-- an old day\n");
      writeFileSync(join(out, "notes.txt"), "an operator's own file");
      const printed = await npm("backup", ["--url", plane.url, "--out", out], { GRIDX_ADMIN_TOKEN: plane.adminToken });
      const name = backupName(Date.now());
      expect(printed).toContain(`in R2 as backups/${name}`);
      expect(printed).toContain("deleted from");
      expect(readdirSync(out).sort()).toEqual(["2020-01-03.sql", "2020-01-04.sql", "2020-01-05.sql", "2020-01-06.sql", "2020-01-07.sql", "2020-01-08.sql", name, "notes.txt"].sort());

      const file = join(out, name);
      const sql = readFileSync(file, "utf8");
      expect(sql).toContain(job.id);
      expect(sql).not.toContain(value);
      expect(sql).not.toContain(apiToken);
      expect(sql).not.toContain(agentToken);
      // The R2 object is the file.
      const listed = await call("/v1/backups");
      expect(listed.json.backups.find((b: { name: string }) => b.name === name)).toMatchObject({ bytes: Buffer.byteLength(sql) });
      expect((await call(`/v1/backups/${name}`)).text).toBe(sql);
      await plane.stop();

      // Wiped: a fresh state folder. Restore into it, then refuse to restore over it.
      const fresh = join(dir, "restored");
      const restored = await npm("restore", [file, "--persist-to", fresh]);
      expect(restored).toMatch(/into the local database at .*restored in \d+ ms: \d+ tables, \d+ rows/);
      expect(await failureOf(npm("restore", [file, "--persist-to", fresh]))).toContain("is not empty");
      const [sealed] = await d1Query(fresh, `SELECT quote(sealed) AS q, hex(sealed) AS h FROM secrets WHERE project = '${project}'`);
      expect(sql).toContain(String(sealed!.q));
      expect(Buffer.from(String(sealed!.h), "hex").toString("latin1")).not.toContain(value);

      // The control plane on the restored database, with the same secrets file (SECRETS_KEY).
      plane = await startControlPlane({ port, adminToken: plane.adminToken, secretsFile: join(dir, "secrets.env"), persistTo: fresh, vars: { ...E2E_VARS, WORKER_TIMEOUT_S: "60" } });
      expect((await call("/v1/me", { token: apiToken })).json).toMatchObject({ user: { name: user } });
      expect(await waitDone(job.id, apiToken)).toMatchObject({ status: "completed", stdout: `${digest}\n` });
      expect((await call(`/v1/projects/${project}/secrets`, { token: apiToken })).json.secrets.map((s: { name: string }) => s.name)).toEqual(["api-key"]);
      // The old agent token connects, and a new job opens the restored secret.
      agent = startAgent({ url: plane.url, token: agentToken, name: "bk-node", stateDir: join(dir, "agent") });
      const again = (await call("/v1/jobs", { method: "POST", token: apiToken, json: { kind: "python", pool, project, python: { script }, secrets: { API_KEY: "api-key" } } })).json;
      expect(await waitDone(again.id, apiToken)).toMatchObject({ status: "completed", stdout: `${digest}\n` });
      await agent.stop("SIGTERM");
      agent = undefined;
      await plane.stop();

      // With no control plane running, a backup of a named state starts one of its own on it.
      const fromState = join(dir, "from-state");
      const own = await npm("backup", ["--persist-to", fresh, "--secrets-file", join(dir, "secrets.env"), "--out", fromState]);
      expect(own).toContain(`starting a control plane on ${fresh}`);
      expect(readFileSync(join(fromState, name), "utf8")).toContain(again.id);
    } finally {
      await agent?.stop("SIGTERM");
      await plane.stop();
    }
  });
});
