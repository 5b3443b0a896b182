import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { api, cp, launchOnlineAgent, submit, uniqueName } from "./helpers.ts";
import { startSshd, type TestSshd } from "./sshd.ts";

describe("operator probes over a real sshd", () => {
  const pool = uniqueName("probe");
  const name = uniqueName("host");
  let sshd: TestSshd;
  let agent: AgentProcess;
  let workerId: string;

  beforeAll(async () => {
    sshd = await startSshd(cp().stateDir);
    const launched = await launchOnlineAgent({
      pool,
      name,
      extraArgs: [
        "--probe-ssh-target", `${sshd.user}@127.0.0.1:${sshd.port}`,
        "--probe-ssh-key", sshd.clientKey,
        "--probe-allow", "uname -s",
        "--probe-allow", "sleep *",
        "--probe-allow", "head -c *",
        "--probe-timeout", "2",
      ],
    });
    agent = launched;
    workerId = launched.worker.id;
  });

  afterAll(async () => {
    await agent?.stop("SIGTERM");
    await sshd?.stop();
  });

  const probe = (command: string, timeout_s?: number) => api(`/v1/workers/${workerId}/probes`, { method: "POST", json: { command, ...(timeout_s ? { timeout_s } : {}) } });

  it("runs an allowed command on the host over SSH", async () => {
    const res = await probe("uname -s");
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ status: "completed", exit_code: 0, output: "Linux\n", truncated: false, error: null });
  });

  it("refuses a command off the allowlist without running it", async () => {
    const res = await probe("touch /tmp/gridx-probe-was-here");
    expect(res.json).toMatchObject({ status: "refused", exit_code: null });
    const chained = await probe("sleep 0; touch /tmp/gridx-probe-was-here");
    expect(chained.json.status).toBe("refused");
  });

  it("stops a probe at the agent's own timeout, whatever the operator asked", async () => {
    const res = await probe("sleep 30", 60);
    expect(res.json).toMatchObject({ status: "timeout", error: "stopped after 2s" });
  });

  it("caps the output", async () => {
    const res = await probe("head -c 200000 /dev/zero");
    expect(res.json.status).toBe("completed");
    expect(res.json.truncated).toBe(true);
    expect(res.json.output.length).toBe(64 * 1024);
  });

  it("keeps every probe in the audit trail, and never runs a job", async () => {
    const audit = (await api(`/v1/workers/${workerId}/probes`)).json.probes;
    expect(audit.length).toBeGreaterThanOrEqual(5);
    expect(audit.every((p: any) => p.requested_by === "admin" && p.status !== "pending")).toBe(true);
    expect(audit.map((p: any) => p.command)).toContain("touch /tmp/gridx-probe-was-here");
    const jobs = (await api(`/v1/jobs?pool=${pool}`)).json.jobs;
    expect(jobs).toEqual([]);
    // and the probe path is not a way to submit one: the worker still runs ordinary jobs only through the queue
    const job = await submit({ kind: "python", pool, python: { script: "print('job')" } });
    expect(job.status).toBe("queued");
  });
});
