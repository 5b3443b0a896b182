import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { api, cp, isDone, launchOnlineAgent, submit, uniqueName, waitForJob } from "./helpers.ts";

describe("secrets as environment variables, through a real agent and Docker", () => {
  const pool = uniqueName("secrets");
  let agent: AgentProcess;

  beforeAll(async () => {
    // No prefetch: a job's secrets travel in its assignment, and a prefetched job is assigned
    // while it waits for the slot. The deleted-secret test is about a job still in the queue.
    agent = await launchOnlineAgent({ pool, name: uniqueName("secrets-node"), extraArgs: ["--prefetch", "0"] });
  });

  afterAll(async () => {
    await agent?.stop("SIGTERM");
  });

  it("runs the job with the value in its environment, and its logs, tails and job log show *** in its place", async () => {
    const value = `sk-${randomBytes(12).toString("hex")}`;
    const name = uniqueName("api-key");
    expect((await api(`/v1/projects/default/secrets/${name}`, { method: "PUT", json: { value } })).status).toBe(200);
    const script = [
      "import os, sys",
      "key = os.environ['API_KEY']",
      "print(key)",
      "print('the key is ' + key + ', twice: ' + key + key, flush=True)",
      // Written in two pieces, the value reaches the agent cut in two.
      "sys.stderr.write('err ' + key[:7]); sys.stderr.flush()",
      "sys.stderr.write(key[7:] + '\\n')",
      "print(len(key), key.startswith('sk-'))",
    ].join("\n");
    const job = await submit({ kind: "python", pool, python: { script }, secrets: { API_KEY: name } });
    expect(JSON.stringify(job)).not.toContain(value);

    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "completed", exit_code: 0, stdout: "***\nthe key is ***, twice: ***\n27 True\n", stderr: "err ***\n" });

    const logs = await api(`/v1/jobs/${job.id}/logs`);
    expect(logs.text).not.toContain(value);
    const lines = (logs.json.lines as { stream: string; text: string }[]).filter((l) => l.stream !== "system").map((l) => `${l.stream}: ${l.text}`);
    expect(lines).toEqual(expect.arrayContaining(["stdout: ***", "stdout: the key is ***, twice: ***", "stderr: err ***"]));

    const artifact = await fetch(`${cp().url}/v1/jobs/${job.id}/artifacts/.gridx/job.log`, { headers: { authorization: `Bearer ${cp().adminToken}` }, redirect: "manual" });
    expect(artifact.status).toBe(302);
    const jobLog = await (await fetch(artifact.headers.get("location")!)).text();
    expect(jobLog).toContain("the key is ***, twice: ***");
    expect(jobLog).not.toContain(value);
  });

  it("fails a job whose secret was deleted before it started input_error, naming it, and never runs it without", async () => {
    const name = uniqueName("gone");
    await api(`/v1/projects/default/secrets/${name}`, { method: "PUT", json: { value: `gone-${randomBytes(8).toString("hex")}` } });
    // The one slot is busy, so the second job waits queued while its secret goes.
    const blocker = await submit({ kind: "python", pool, python: { script: "import time\ntime.sleep(600)" } });
    await waitForJob(blocker.id, (j) => j.status === "running");
    const job = await submit({ kind: "python", pool, python: { script: "print('ran')" }, secrets: { API_KEY: name } });
    expect((await api(`/v1/projects/default/secrets/${name}`, { method: "DELETE" })).status).toBe(204);
    await api(`/v1/jobs/${blocker.id}/cancel`, { method: "POST" });

    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "failed", failure_reason: "input_error", stdout: "" });
    expect(done.failure_message).toContain(`secret ${name} (for API_KEY)`);
  });
});
