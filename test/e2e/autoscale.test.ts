import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollUntil } from "../helpers/poll.ts";
import { buildAgent } from "../../scripts/build-agent.ts";
import { issueAgentToken, ROOT } from "../../scripts/local-grid.ts";
import { api, cp, removeContainersOfAgent, submit, uniqueName, waitForJob } from "./helpers.ts";

/** The example receiver (examples/autoscaler/receiver.ts) as an operator runs it; resolves once it listens. */
async function startReceiver(env: Record<string, string>, args: string[]) {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", join(ROOT, "examples", "autoscaler", "receiver.ts"), "--port", "0", ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (c: Buffer) => (output += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (output += c.toString()));
  const lines = () =>
    output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { msg: string; by?: string } & Record<string, any>)
      // Its agents write to the same stdout.
      .filter((l) => l.by === "autoscaler");
  const listening = await pollUntil(async () => lines().find((l) => l.msg.startsWith("listening on ")), Boolean, { timeoutMs: 30_000, intervalMs: 50, what: "the receiver listening" });
  return { child, url: listening!.msg.slice("listening on ".length), lines, output: () => output };
}

describe("autoscaling: a pool's scale_up call makes the example receiver start a --once agent that runs the queued job", () => {
  const pool = uniqueName("autoscale");
  const secret = "whsec_e2e-autoscale-" + Math.random().toString(36).slice(2);
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    const token = await issueAgentToken(cp(), uniqueName("autoscaler"), pool);
    const stateDir = mkdtempSync(join(cp().stateDir, "autoscaler-"));
    receiver = await startReceiver(
      { AUTOSCALE_SECRET: secret, GRIDX_URL: cp().url, GRIDX_AGENT_TOKEN: token },
      ["--max-agents", "1", "--state-dir", stateDir, "--name-prefix", pool, "--agent", buildAgent()],
    );
    const put = await api(`/v1/pools/${pool}/autoscale`, { method: "PUT", json: { url: `${receiver.url}gridx`, secret } });
    if (put.status !== 200) throw new Error(`setting the hook: ${put.status} ${put.text}`);
  });

  afterAll(async () => {
    await api(`/v1/pools/${pool}/autoscale`, { method: "DELETE" });
    receiver?.child.kill("SIGTERM");
    await removeContainersOfAgent(`${pool}-${receiver?.child.pid}-1`);
  });

  it("refuses a call whose signature is not the hook's", async () => {
    const body = JSON.stringify({ type: "scale_up", call_id: "asc_forged", pool, shortfall: { jobs: 5 } });
    const ts = String(Math.floor(Date.now() / 1000));
    const res = await fetch(`${receiver.url}gridx`, { method: "POST", body, headers: { "gridx-timestamp": ts, "gridx-signature": "v1=" + "0".repeat(64) } });
    expect(res.status).toBe(401);
    expect(receiver.lines().some((l) => l.msg === "agent started")).toBe(false);
  });

  it("starts one --once agent for a job waiting in an empty pool; it runs the job and exits", async () => {
    const job = await submit({ kind: "python", pool, python: { script: "print(6*7)" } });
    const done = await waitForJob(job.id, (j) => j.status === "completed" || j.status === "failed", 120_000);
    expect(done).toMatchObject({ status: "completed", exit_code: 0 });

    const hook = (await api(`/v1/pools/${pool}/autoscale`)).json;
    const up = hook.calls.find((c: any) => c.kind === "scale_up");
    expect(up).toMatchObject({ status: "delivered", last_status: 202, body: { type: "scale_up", pool, online_workers: 0, shortfall: { jobs: 1, never_fit: 1 } } });

    const started = receiver.lines().filter((l) => l.msg === "agent started");
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({ call_id: up.id });
    expect(done.worker_id).toBeTruthy();
    const worker = (await api(`/v1/workers/${done.worker_id}`)).json;
    expect(worker.name).toBe(started[0]!.name);
    // --once: the job reported, the agent leaves by itself.
    const exited = await pollUntil(async () => receiver.lines().find((l) => l.msg === "agent exited"), Boolean, { timeoutMs: 60_000, intervalMs: 100, what: "the --once agent's exit" });
    expect(exited).toMatchObject({ name: started[0]!.name, code: 0 });
  });
});
