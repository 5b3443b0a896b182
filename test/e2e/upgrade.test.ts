import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueAgentToken } from "../../scripts/local-grid.ts";
import { buildAgent, ROOT } from "../../scripts/build-agent.ts";
import { stateFile, type BundleState } from "../../agent/bin/bundle-choice.mjs";
import { pollUntil } from "../helpers/poll.ts";
import { api, cp, isDone, removeContainersOfAgent, runGridx, submit, uniqueName, waitForJob } from "./helpers.ts";

const tag = Math.random().toString(36).slice(2, 8);
const OLD = `0.0.1-old.${tag}`;
const NEW = `0.0.2-new.${tag}`;

/**
 * A stand-in for systemd's Restart=always with RestartPreventExitStatus=3: the launcher is
 * started again whenever it exits, except with 3 or once the test stops it.
 */
function supervise(launcher: string, args: string[], env: Record<string, string>) {
  const exits: (number | null)[] = [];
  let output = "";
  let child: ChildProcess | null = null;
  let stopped = false;
  const start = () => {
    child = spawn(process.execPath, [launcher, "run", ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const collect = (c: Buffer) => void (output = (output + c.toString()).slice(-200_000));
    child.stdout!.on("data", collect);
    child.stderr!.on("data", collect);
    child.on("exit", (code) => {
      exits.push(code);
      if (!stopped && code !== 3) start();
    });
  };
  start();
  return {
    exits,
    output: () => output,
    stop: async () => {
      stopped = true;
      const c = child!;
      if (c.exitCode !== null || c.signalCode !== null) return;
      const gone = new Promise((r) => c.once("exit", r));
      c.kill("SIGTERM");
      await gone;
    },
  };
}

/** Publishes through the control plane's presigned PUT as `gridx agent publish` does; returns the upload URL, which stays valid a while. */
async function publishText(version: string, text: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const body = Buffer.from(text);
  const created = await api("/v1/agent-bundles", { method: "POST", json: { version, sha256: createHash("sha256").update(body).digest("hex"), size: body.length } });
  expect(created.status).toBe(201);
  expect((await fetch(created.json.upload.url, { method: "PUT", body })).status).toBe(200);
  expect((await api(`/v1/agent-bundles/${version}/complete`, { method: "POST" })).status).toBe(200);
  return created.json.upload.url;
}

describe("agent self-upgrade", () => {
  const pool = uniqueName("upgrade");
  const name = uniqueName("up");
  const root = mkdtempSync(join(cp().stateDir, "upgrade-"));
  const stateDir = join(root, "state");
  let agent: ReturnType<typeof supervise>;

  const worker = async () => (await api(`/v1/workers?pool=${pool}`)).json.workers.find((w: { name: string }) => w.name === name);
  const upgradeState = async () => (await api(`/v1/pools/${pool}/upgrade`)).json.workers.find((w: { name: string }) => w.name === name);
  const record = () => JSON.parse(readFileSync(stateFile(stateDir), "utf8")) as BundleState;
  const runsJob = async () => {
    const job = await waitForJob((await submit({ pool, kind: "python", python: { script: "print('ran')" } })).id, isDone);
    expect(job.status).toBe("completed");
    expect(job.stdout).toBe("ran\n");
  };

  beforeAll(async () => {
    // An installation as `npm install` leaves it: the launcher with the OLD bundle beside it.
    mkdirSync(join(root, "bin"));
    for (const f of ["gridx-agent.mjs", "bundle-choice.mjs"]) copyFileSync(join(ROOT, "agent", "bin", f), join(root, "bin", f));
    buildAgent({ version: OLD, outfile: join(root, "dist", "gridx-agent.mjs") });
    const fresh = buildAgent({ version: NEW, outfile: join(root, "new", "gridx-agent.mjs") });
    const published = await runGridx(["agent", "publish", NEW, "--file", fresh]);
    // Setup, not the subject: the publish is asserted by the CLI's own tests; here it only has to work.
    if (published.code !== 0 || !published.stdout.includes(`agent bundle ${NEW}`)) throw new Error(`gridx agent publish failed: ${published.stderr}${published.stdout}`);
    const token = await issueAgentToken(cp(), name, pool);
    agent = supervise(join(root, "bin", "gridx-agent.mjs"), ["--url", cp().url, "--name", name, "--state-dir", stateDir, "--slots", "1"], { GRIDX_AGENT_TOKEN: token, GRIDX_UPGRADE_CONFIRM_S: "60" });
    await pollUntil(worker, (w) => w?.status === "online", { timeoutMs: 60_000, intervalMs: 200, what: "the old agent online" });
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await removeContainersOfAgent(name);
  });

  it("drains, lets its running job finish, restarts into the new bundle, which connects and runs jobs", async () => {
    expect((await worker()).agent_version).toBe(OLD);
    const long = await submit({ pool, kind: "python", python: { script: "import time\ntime.sleep(4)\nprint('finished under the old agent')" } });
    await waitForJob(long.id, (j) => j.status === "running");

    const asked = await runGridx(["upgrade", pool, NEW]);
    expect(asked.code).toBe(0);
    expect(asked.stdout).toContain(`pool ${pool}: upgrading to ${NEW}`);
    await pollUntil(upgradeState, (u) => u?.state === "draining", { timeoutMs: 30_000, intervalMs: 100, what: "draining" });
    const done = await waitForJob(long.id, isDone);
    expect(done).toMatchObject({ status: "completed", stdout: "finished under the old agent\n" });

    await pollUntil(upgradeState, (u) => u?.state === "done", { timeoutMs: 90_000, intervalMs: 200, what: "upgrade done" });
    expect(await upgradeState()).toMatchObject({ from: OLD, to: NEW, version: NEW, online: true, reason: null });
    expect((await worker()).status).toBe("online");
    expect(agent.exits).toEqual([75]);
    expect(record()).toMatchObject({ current: { version: NEW, path: join(stateDir, "bundles", NEW, "gridx-agent.mjs") }, pending: null, rolled_back: null });
    await runsJob();
    const shown = await runGridx(["upgrade", "show", pool]);
    expect(shown.stdout).toMatch(new RegExp(`${name}\\s+online\\s+${NEW.replace(/\./g, "\\.")}\\s+${OLD.replace(/\./g, "\\.")}\\s+${NEW.replace(/\./g, "\\.")}\\s+done`));
  }, 180_000);

  it("refuses a bundle whose bytes are not those the control plane checked, and stays on its version, taking jobs", async () => {
    const tampered = `0.0.3-tampered.${tag}`;
    const url = await publishText(tampered, "export {}; // the one checked\n");
    // Someone with the upload URL swaps the bytes, as many of them, after the control plane checked them.
    expect((await fetch(url, { method: "PUT", body: "export {}; // a swapped one!!\n" })).status).toBe(200);
    expect((await api(`/v1/pools/${pool}/upgrade`, { method: "POST", json: { version: tampered } })).status).toBe(200);
    const failed = await pollUntil(upgradeState, (u) => u?.state === "failed", { timeoutMs: 30_000, intervalMs: 100, what: "the upgrade refused" });
    expect(failed.reason).toMatch(/SHA-256 is [0-9a-f]{64}, the control plane holds [0-9a-f]{64}; refused, staying on/);
    expect(await worker()).toMatchObject({ status: "online", agent_version: NEW });
    expect(agent.exits).toEqual([75]);
    await runsJob();
  }, 120_000);

  it("rolls a bundle that cannot connect back to the one before, which reconnects and says so", async () => {
    const broken = `0.0.4-broken.${tag}`;
    const file = join(root, "broken.mjs");
    writeFileSync(file, `// gridx-agent ${broken}\nprocess.stderr.write('this bundle is broken\\n');\nprocess.exit(1);\n`);
    // Published under a version other than the one it names, its agents could never confirm it: refused.
    const misnamed = await runGridx(["agent", "publish", `${broken}x`, "--file", file]);
    expect(misnamed.code).not.toBe(0);
    expect(misnamed.stderr).toContain(`is agent ${broken}, not ${broken}x`);
    expect((await runGridx(["agent", "publish", broken, "--file", file])).code).toBe(0);
    expect((await runGridx(["upgrade", pool, broken])).code).toBe(0);
    const rolled = await pollUntil(upgradeState, (u) => u?.state === "rolled_back", { timeoutMs: 90_000, intervalMs: 200, what: "rolled back" });
    expect(rolled).toMatchObject({ from: NEW, to: broken, version: NEW, online: true });
    expect(rolled.reason).toBe(`the new agent ${broken} exited with status 1 before its hello was accepted`);
    // The upgrade's exit, then the broken bundle's, turned by the launcher into a restart.
    expect(agent.exits).toEqual([75, 75, 75]);
    expect(agent.output()).toContain("this bundle is broken");
    expect(record()).toMatchObject({ current: { version: NEW }, pending: null, rolled_back: { version: broken, reported: true } });
    expect((await worker()).status).toBe("online");
    await runsJob();
  }, 180_000);
});
