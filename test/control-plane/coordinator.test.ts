import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { encode, HEARTBEAT_ACK_FRAME, HEARTBEAT_FRAME } from "../../protocol/index.ts";
import { agentToken, api, caps, FakeAgent, sleep, submit, uniquePool, waitForJob, userToken } from "./helpers.ts";
import { pollUntil } from "../helpers/poll.ts";

function coordinator(pool: string) {
  return env.COORDINATOR.get(env.COORDINATOR.idFromName(pool));
}

async function runAlarm(pool: string) {
  // The alarm may not be due yet; runDurableObjectAlarm runs it now either way.
  await runDurableObjectAlarm(coordinator(pool));
}

describe("coordinator: a job's life over the wire", () => {
  it("assigns, starts, streams logs and completes with its stdout", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool })).json;
    const assign = await agent.next("assign_job");
    // The log cap travels with the assignment: LOG_MAX_BYTES, 100 MiB unless wrangler.toml says otherwise.
    expect(assign.payload).toMatchObject({ job_id: job.id, attempt: 1, gpu_indices: [], log_max_bytes: 100 * 1024 * 1024 });
    expect(assign.payload.spec.task).toEqual({ kind: "python", python: { script: "print(1)", args: [] } });
    expect((await api(`/v1/jobs/${job.id}`)).json).toMatchObject({ status: "assigned", worker_id: workerId, attempt: 1 });

    agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
    await waitForJob(job.id, (j) => j.status === "running");
    agent.send({
      type: "job_log",
      payload: {
        job_id: job.id,
        attempt: 1,
        seq: 0,
        lines: [
          { stream: "stdout", text: "hello", ts: 1 },
          { stream: "stderr", text: "warn", ts: 2 },
          { stream: "stdout", text: "world", ts: 3 },
        ],
      },
    });
    agent.send({ type: "job_result", payload: { job_id: job.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    expect((await agent.next("result_ack")).payload).toEqual({ job_id: job.id, attempt: 1 });
    const done = await waitForJob(job.id, (j) => j.status === "completed");
    expect(done).toMatchObject({ exit_code: 0, failure_reason: null, stdout: "hello\nworld\n", stderr: "warn\n" });
    expect(done.started_at).not.toBeNull();
    expect(done.finished_at).not.toBeNull();

    const logs = await api(`/v1/jobs/${job.id}/logs`);
    expect(logs.json.lines.map((l: any) => `${l.stream}:${l.text}`)).toEqual(["stdout:hello", "stderr:warn", "stdout:world"]);
    expect(logs.json.next_cursor).toBe("1.0");
    const after = await api(`/v1/jobs/${job.id}/logs?after=1.0`);
    expect(after.json.lines).toEqual([]);
    agent.close();
  });

  it("records a failing exit as failed/exit_code with the code", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool })).json;
    await agent.next("assign_job");
    agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
    agent.send({ type: "job_result", payload: { job_id: job.id, attempt: 1, exit_code: 3, failure_reason: "exit_code", message: "exited 3" } });
    const done = await waitForJob(job.id, (j) => j.status === "failed");
    expect(done).toMatchObject({ exit_code: 3, failure_reason: "exit_code" });
    agent.close();
  });

  it("drops a duplicated log batch", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool })).json;
    await agent.next("assign_job");
    const batch = { type: "job_log" as const, payload: { job_id: job.id, attempt: 1, seq: 0, lines: [{ stream: "stdout" as const, text: "once", ts: 1 }] } };
    agent.send(batch);
    agent.send(batch);
    agent.send({ type: "job_result", payload: { job_id: job.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    const done = await waitForJob(job.id, (j) => j.status === "completed");
    expect(done.stdout).toBe("once\n");
    agent.close();
  });

  it("streams logs as server-sent events until the job ends", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool })).json;
    await agent.next("assign_job");
    agent.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 0, lines: [{ stream: "stdout", text: "first", ts: 1 }] } });
    const { SELF } = await import("cloudflare:test");
    const res = await SELF.fetch(`http://gridx.test/v1/jobs/${job.id}/logs?follow=1`, { headers: { authorization: "Bearer test-admin-token" } });
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    setTimeout(() => {
      agent.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 1, lines: [{ stream: "stdout", text: "second", ts: 2 }] } });
      agent.send({ type: "job_result", payload: { job_id: job.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    }, 300);
    const text = await res.text();
    const events = text.split("\n\n").filter(Boolean);
    expect(events.filter((e) => e.includes("event: log")).map((e) => JSON.parse(/data: (.*)/.exec(e)![1]!).text)).toEqual(["first", "second"]);
    expect(events.at(-1)).toContain("event: end");
    expect(events.at(-1)).toContain('"status":"completed"');
    agent.close();
  });
});

describe("coordinator: protocol hygiene", () => {
  it("refuses another protocol version with a clear error and closes", async () => {
    const agent = await FakeAgent.connect(await agentToken(uniquePool()));
    agent.sendRaw(JSON.stringify({ v: 99, type: "hello", payload: {} }));
    const err = await agent.next("error");
    expect(err.payload.code).toBe("protocol_version_unsupported");
    expect(err.payload.message).toMatch(/version 99/);
    await sleep(100);
    expect(agent.closed?.code).toBe(4001);
  });

  it("refuses an old agent at the door when it names its protocol", async () => {
    const res = await api("/v1/agent/connect?protocol=0", { token: await agentToken(uniquePool()), headers: { upgrade: "websocket" } });
    expect(res.status).toBe(426);
    expect(res.json.error.message).toMatch(/upgrade the agent/);
  });

  it("answers garbage, unknown types and messages before hello with errors, and stays up", async () => {
    const agent = await FakeAgent.connect(await agentToken(uniquePool()));
    agent.sendRaw("not json");
    expect((await agent.next("error")).payload.code).toBe("bad_message");
    agent.sendRaw(encode({ type: "heartbeat", payload: {} }).replace("heartbeat", "teleport"));
    expect((await agent.next("error")).payload.message).toMatch(/teleport/);
    agent.send({ type: "job_started", payload: { job_id: "j_x", attempt: 1 } });
    expect((await agent.next("error")).payload.message).toMatch(/hello first/);
    agent.send({ type: "hello", payload: { agent_version: "t", name: "ok", slots: 1, caps: caps(), running: [] } });
    expect((await agent.next("hello_ack")).payload.worker_id).toMatch(/^w_/);
  });

  it("answers heartbeats (the runtime's auto-response)", async () => {
    const { agent } = await FakeAgent.join(await agentToken(uniquePool()));
    const got = new Promise<string>((resolve) => agent.ws.addEventListener("message", (ev) => resolve(String(ev.data)), { once: true }));
    agent.sendRaw(HEARTBEAT_FRAME);
    expect(await got).toBe(HEARTBEAT_ACK_FRAME);
  });

  it("is the same worker when an agent with the same name reconnects, and drops the older socket", async () => {
    const token = await agentToken(uniquePool());
    const first = await FakeAgent.join(token, { name: "same" });
    const second = await FakeAgent.join(token, { name: "same" });
    expect(second.workerId).toBe(first.workerId);
    await sleep(100);
    expect(first.agent.closed?.code).toBe(4004);
  });
});

describe("coordinator: scheduling", () => {
  it("takes higher priority first, then first-in first-out", async () => {
    const pool = uniquePool();
    const low = (await submit({ pool, priority: 0 })).json;
    const high = (await submit({ pool, priority: 10 })).json;
    const low2 = (await submit({ pool, priority: 0 })).json;
    const { agent } = await FakeAgent.join(await agentToken(pool), { slots: 1 });
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      const a = await agent.next("assign_job");
      order.push(a.payload.job_id);
      agent.send({ type: "job_result", payload: { job_id: a.payload.job_id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    }
    expect(order).toEqual([high.id, low.id, low2.id]);
  });

  it("fills free slots and no more", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool), { slots: 2 });
    const jobs = [(await submit({ pool })).json, (await submit({ pool })).json, (await submit({ pool })).json];
    const a1 = await agent.next("assign_job");
    const a2 = await agent.next("assign_job");
    expect(await agent.receives("assign_job", 400)).toBe(false);
    expect((await api(`/v1/jobs/${jobs[2]!.id}`)).json.status).toBe("queued");
    agent.send({ type: "job_result", payload: { job_id: a1.payload.job_id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    const a3 = await agent.next("assign_job");
    expect(new Set([a1, a2, a3].map((a) => a.payload.job_id))).toEqual(new Set(jobs.map((j) => j.id)));
  });

  it("settles starts and results that many agents send at once, acknowledging every one", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const agents = await Promise.all(Array.from({ length: 8 }, (_, i) => FakeAgent.join(token, { name: `m${i}` })));
    const jobs = await Promise.all(agents.map(() => submit({ pool }).then((r) => r.json)));
    const assigned = await Promise.all(agents.map(({ agent }) => agent.next("assign_job")));
    for (const [i, { agent }] of agents.entries()) {
      const ref = { job_id: assigned[i]!.payload.job_id, attempt: 1 };
      agent.send({ type: "job_started", payload: ref });
      agent.send({ type: "job_result", payload: { ...ref, exit_code: i % 2, failure_reason: i % 2 ? "exit_code" : null, message: null } });
    }
    const acks = await Promise.all(agents.map(({ agent }) => agent.next("result_ack")));
    expect(acks.map((a) => a.payload.job_id).sort()).toEqual(assigned.map((a) => a.payload.job_id).sort());
    const done = await Promise.all(jobs.map((j) => waitForJob(j.id, (x) => x.status !== "assigned" && x.status !== "running")));
    const byId = new Map(assigned.map((a, i) => [a.payload.job_id, i]));
    expect(done.map((j) => [j.status, j.exit_code, j.started_at !== null])).toEqual(done.map((j) => (byId.get(j.id)! % 2 ? ["failed", 1, true] : ["completed", 0, true])));
    agents.forEach(({ agent }) => agent.close());
  });

  it("speaks batched frames with an agent that offers them: assignments together, reports and acks together", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const jobs = [];
    for (let i = 0; i < 3; i++) jobs.push((await submit({ pool })).json);
    const { agent } = await FakeAgent.join(token, { slots: 3, batch_frames: true });
    const assigned = [await agent.next("assign_job"), await agent.next("assign_job"), await agent.next("assign_job")];
    // The hello_ack, then one frame with all three assignments.
    expect(agent.frameSizes).toEqual([1, 3]);
    expect(assigned.map((a) => a.payload.job_id).sort()).toEqual(jobs.map((j) => j.id).sort());

    // Starts, a log and results in one frame, in order: the log is kept, every job ends, one frame of acks.
    const [first, second, third] = assigned.map((a) => ({ job_id: a.payload.job_id, attempt: a.payload.attempt }));
    agent.sendBatch(
      { type: "job_started", payload: first! },
      { type: "job_started", payload: second! },
      { type: "job_log", payload: { ...first!, seq: 0, lines: [{ stream: "stdout", text: "batched", ts: 1 }] } },
      { type: "job_result", payload: { ...first!, exit_code: 0, failure_reason: null, message: null } },
      { type: "job_result", payload: { ...second!, exit_code: 3, failure_reason: "exit_code", message: null } },
      { type: "job_started", payload: third! },
    );
    const acks = [await agent.next("result_ack"), await agent.next("result_ack")];
    expect(acks.map((a) => a.payload)).toEqual([first, second]);
    expect(agent.frameSizes.slice(2)).toEqual([2]);
    expect(await waitForJob(first!.job_id, (j) => j.status === "completed")).toMatchObject({ stdout: "batched\n", exit_code: 0 });
    expect(await waitForJob(second!.job_id, (j) => j.status === "failed")).toMatchObject({ exit_code: 3 });
    expect((await waitForJob(third!.job_id, (j) => j.status === "running")).started_at).not.toBeNull();
    agent.close();
  });

  it("sends an agent that does not offer batching one message per frame, and refuses oversized batches", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    for (let i = 0; i < 2; i++) await submit({ pool });
    const { agent } = await FakeAgent.join(token, { slots: 2 });
    await agent.next("assign_job");
    await agent.next("assign_job");
    expect(agent.frameSizes).toEqual([1, 1, 1]);
    agent.sendRaw(`[${Array.from({ length: 257 }, () => HEARTBEAT_FRAME).join(",")}]`);
    expect((await agent.next("error")).payload.message).toMatch(/1 to 256 messages/);
    agent.close();
  });

  it("places a job only where GPUs, memory and labels fit, and hands out GPU indices", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const plain = await FakeAgent.join(token, { name: "plain", slots: 4 });
    const gpu = await FakeAgent.join(token, {
      name: "gpu",
      slots: 4,
      caps: caps({ gpus: [{ index: 0, model: "H100", memory_mb: 80000 }, { index: 1, model: "H100", memory_mb: 80000 }], labels: { zone: "lab" } }),
    });
    const job = (await submit({ pool, requirements: { gpus: 1, labels: { zone: "lab" } } })).json;
    const a = await gpu.agent.next("assign_job");
    expect(a.payload.job_id).toBe(job.id);
    expect(a.payload.gpu_indices).toEqual([0]);
    const second = (await submit({ pool, requirements: { gpus: 1 } })).json;
    const b = await gpu.agent.next("assign_job");
    expect(b.payload.job_id).toBe(second.id);
    expect(b.payload.gpu_indices).toEqual([1]);
    // Both GPUs are taken: a third GPU job waits, while a CPU job still runs on the plain worker.
    const third = (await submit({ pool, requirements: { gpus: 1 } })).json;
    const cpu = (await submit({ pool, requirements: { memory_mb: 8000 } })).json;
    expect((await plain.agent.next("assign_job")).payload.job_id).toBe(cpu.id);
    expect((await api(`/v1/jobs/${third.id}`)).json.status).toBe("queued");
    const huge = (await submit({ pool, requirements: { memory_mb: 100_000 } })).json;
    await sleep(300);
    expect((await api(`/v1/jobs/${huge.id}`)).json.status).toBe("queued");
  });

  it("rotates over workers in a round-robin pool", async () => {
    // vitest.config.mts sets POOL_POLICIES=rr=round-robin.
    const token = await agentToken("rr");
    const agents = [await FakeAgent.join(token, { name: "r1", slots: 10 }), await FakeAgent.join(token, { name: "r2", slots: 10 })];
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const job = (await submit({ pool: "rr" })).json;
      await waitForJob(job.id, (j) => j.status === "assigned");
      seen.push((await api(`/v1/jobs/${job.id}`)).json.worker_id);
    }
    expect(seen[0]).not.toBe(seen[1]);
    expect(seen[0]).toBe(seen[2]);
    expect(seen[1]).toBe(seen[3]);
    agents.forEach((a) => a.agent.close());
  });

  it("gives a draining worker no new jobs, shows it draining, and tells the agent", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool));
    const drained = await api(`/v1/workers/${workerId}/drain`, { method: "POST" });
    expect(drained.status).toBe(200);
    expect(drained.json.status).toBe("draining");
    await agent.next("drain");
    const job = (await submit({ pool })).json;
    expect(await agent.receives("assign_job", 400)).toBe(false);
    const workers = (await api(`/v1/workers?pool=${pool}`)).json.workers;
    expect(workers).toHaveLength(1);
    expect(workers[0]).toMatchObject({ id: workerId, status: "draining", slots: 1, running: 0, caps: { cpu_cores: 4, memory_mb: 8192, gpus: 0 } });
    await api(`/v1/workers/${workerId}/undrain`, { method: "POST" });
    expect((await agent.next("assign_job")).payload.job_id).toBe(job.id);
  });

  it("marks a worker draining when its agent says it is shutting down", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool));
    agent.send({ type: "draining", payload: {} });
    await sleep(200);
    const w = (await api(`/v1/workers?pool=${pool}`)).json.workers.find((x: any) => x.id === workerId);
    expect(w.status).toBe("draining");
  });
});

describe("coordinator: an agent's drain across a reconnect", () => {
  it("stays when the agent's hello says it still drains (an upgrade waiting for its jobs), and ends when it does not", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const first = await FakeAgent.join(token, { name: "up1" });
    first.agent.send({ type: "draining", payload: {} });
    const status = () => api(`/v1/workers/${first.workerId}`).then((r) => r.json.status);
    await pollUntil(status, (s) => s === "draining", { timeoutMs: 5000, intervalMs: 50, what: "the worker draining" });
    first.agent.close();
    const again = await FakeAgent.join(token, { name: "up1", draining: true });
    expect(again.workerId).toBe(first.workerId);
    expect(await status()).toBe("draining");
    const job = (await submit({ pool })).json;
    expect(await again.agent.receives("assign_job", 400)).toBe(false);
    again.agent.close();
    // The restarted agent (the new bundle) says hello without a drain: it takes the job.
    const restarted = await FakeAgent.join(token, { name: "up1" });
    expect((await restarted.agent.next("assign_job")).payload.job_id).toBe(job.id);
    restarted.agent.close();
  });
});

describe("coordinator: cancel", () => {
  it("cancels a running job, tells its agent, and holds the slot until the agent confirms", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool), { slots: 1 });
    const job = (await submit({ pool })).json;
    await agent.next("assign_job");
    agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
    await waitForJob(job.id, (j) => j.status === "running");
    const res = await api(`/v1/jobs/${job.id}/cancel`, { method: "POST" });
    expect(res.json.status).toBe("canceled");
    expect((await agent.next("cancel_job")).payload).toEqual({ job_id: job.id, attempt: 1, reason: "user" });
    const next = (await submit({ pool })).json;
    expect(await agent.receives("assign_job", 400)).toBe(false);
    agent.send({ type: "job_result", payload: { job_id: job.id, attempt: 1, exit_code: 137, failure_reason: "canceled_by_worker", message: "stopped" } });
    expect((await agent.next("assign_job")).payload.job_id).toBe(next.id);
    // The late result does not change the canceled job.
    expect((await api(`/v1/jobs/${job.id}`)).json).toMatchObject({ status: "canceled", exit_code: null });
  });

  it("refuses to cancel a finished job", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool })).json;
    await agent.next("assign_job");
    agent.send({ type: "job_result", payload: { job_id: job.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    await waitForJob(job.id, (j) => j.status === "completed");
    const res = await api(`/v1/jobs/${job.id}/cancel`, { method: "POST" });
    expect(res.status).toBe(409);
    expect(res.json.error.message).toMatch(/completed/);
  });
});

describe("coordinator: lost workers, reconciliation, deadlines", () => {
  it("requeues the jobs of a worker that goes silent, and offline is shown", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const { agent, workerId } = await FakeAgent.join(token, { name: "quiet" });
    const job = (await submit({ pool, max_retries: 1 })).json;
    await agent.next("assign_job");
    agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
    await waitForJob(job.id, (j) => j.status === "running");
    // WORKER_TIMEOUT_S is 2 in tests; the agent sends no heartbeat.
    await sleep(2300);
    await runAlarm(pool);
    const requeued = await waitForJob(job.id, (j) => j.status === "queued");
    expect(requeued.attempt).toBe(1);
    expect(requeued.failure_message).toMatch(/lost/);
    expect((await api(`/v1/workers?pool=${pool}`)).json.workers.find((w: any) => w.id === workerId).status).toBe("offline");
    await sleep(50);
    expect(agent.closed?.code).toBe(4003);

    // A second worker gets attempt 2; a late result from attempt 1 is ignored.
    const other = await FakeAgent.join(token, { name: "fresh" });
    const a2 = await other.agent.next("assign_job");
    expect(a2.payload).toMatchObject({ job_id: job.id, attempt: 2 });
    other.agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 2 } });
    await waitForJob(job.id, (j) => j.status === "running" && j.attempt === 2);
  });

  it("does not blame workers for the coordinator's own outage", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool })).json;
    await agent.next("assign_job");
    agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
    await waitForJob(job.id, (j) => j.status === "running");
    // As if the last sweep ran a minute ago and none runs meanwhile: the coordinator, not the worker, is away.
    await runInDurableObject(coordinator(pool), async (_obj, state) => {
      await state.storage.setAlarm(Date.now() + 60_000);
      await state.storage.put("sweep", { lastSweepAt: Date.now() - 60_000, graceUntil: null });
    });
    agent.close();
    await sleep(2300);
    await runAlarm(pool);
    expect((await api(`/v1/jobs/${job.id}`)).json).toMatchObject({ status: "running", attempt: 1 });
    // Once the grace (one WORKER_TIMEOUT_S) has passed without the worker, its job is requeued.
    await sleep(2200);
    await runAlarm(pool);
    expect((await waitForJob(job.id, (j) => j.status !== "running")).status).toBe("queued");
  });

  it("fails a lost job as worker_lost once retries are spent", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool, max_retries: 0 })).json;
    await agent.next("assign_job");
    agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
    await waitForJob(job.id, (j) => j.status === "running");
    agent.close();
    await sleep(2300);
    await runAlarm(pool);
    const failed = await waitForJob(job.id, (j) => j.status === "failed");
    expect(failed.failure_reason).toBe("worker_lost");
  });

  it("keeps a heart-beating worker's jobs", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool })).json;
    await agent.next("assign_job");
    agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
    for (let i = 0; i < 5; i++) {
      agent.sendRaw(HEARTBEAT_FRAME);
      await sleep(500);
    }
    await runAlarm(pool);
    expect((await api(`/v1/jobs/${job.id}`)).json.status).toBe("running");
    expect(agent.closed).toBeNull();
  });

  it("reconciles a reconnecting agent: resends unstarted work, requeues lost work, cancels stale work", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const first = await FakeAgent.join(token, { name: "re", slots: 3 });
    const running = (await submit({ pool })).json;
    const kept = (await submit({ pool })).json;
    const unstarted = (await submit({ pool })).json;
    const assigned = [await first.agent.next("assign_job"), await first.agent.next("assign_job"), await first.agent.next("assign_job")];
    expect(assigned.map((a) => a.payload.job_id).sort()).toEqual([running.id, kept.id, unstarted.id].sort());
    first.agent.send({ type: "job_started", payload: { job_id: running.id, attempt: 1 } });
    first.agent.send({ type: "job_started", payload: { job_id: kept.id, attempt: 1 } });
    await waitForJob(kept.id, (j) => j.status === "running");
    first.agent.close();

    // The restarted agent still runs `kept`, lost `running`, never got `unstarted`, and runs a job nobody gave it.
    const again = await FakeAgent.connect(token);
    again.send({
      type: "hello",
      payload: { agent_version: "t", name: "re", slots: 3, caps: caps(), running: [{ job_id: kept.id, attempt: 1 }, { job_id: "j_ghost", attempt: 1 }] },
    });
    await again.next("hello_ack");
    const messages = [await again.next("cancel_job"), await again.next("assign_job")];
    expect(messages[0]!.payload).toEqual({ job_id: "j_ghost", attempt: 1, reason: "stale" });
    const reassigned = [messages[1]!, await again.next("assign_job")].map((m) => `${m.payload.job_id}#${m.payload.attempt}`).sort();
    expect(reassigned).toEqual([`${unstarted.id}#1`, `${running.id}#2`].sort());
    expect((await api(`/v1/jobs/${kept.id}`)).json).toMatchObject({ status: "running", attempt: 1 });

    // Attempt 1 of the requeued job is stale now: its result changes nothing.
    again.send({ type: "job_result", payload: { job_id: running.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    await again.next("result_ack");
    expect((await api(`/v1/jobs/${running.id}`)).json).toMatchObject({ status: "assigned", attempt: 2 });
  });

  it("fails a job that outlives its timeout when the agent does not stop it (backstop)", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool, limits: { timeout_s: 1 } })).json;
    await agent.next("assign_job");
    agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
    await waitForJob(job.id, (j) => j.status === "running");
    // timeout_s 1 + DEADLINE_GRACE_S 1, heart-beating all along so only the deadline can fire.
    for (let i = 0; i < 5; i++) {
      agent.sendRaw(HEARTBEAT_FRAME);
      await sleep(500);
    }
    await runAlarm(pool);
    const failed = await waitForJob(job.id, (j) => j.status === "failed");
    expect(failed.failure_reason).toBe("timeout");
    expect((await agent.next("cancel_job")).payload.reason).toBe("timeout");
  });

  it("closes a socket that never says hello", async () => {
    const pool = uniquePool();
    const agent = await FakeAgent.connect(await agentToken(pool));
    await sleep(1200);
    await runAlarm(pool);
    await sleep(50);
    expect(agent.closed?.code).toBe(4002);
  });
});

describe("metrics", () => {
  it("exposes jobs by state, queue depth, workers online and a dispatch latency histogram", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool })).json;
    await agent.next("assign_job");
    await submit({ pool });
    agent.send({ type: "job_result", payload: { job_id: job.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    await waitForJob(job.id, (j) => j.status === "completed");
    const res = await api("/metrics");
    expect(res.headers.get("content-type")).toMatch(/text\/plain/);
    expect(res.text).toContain(`gridx_jobs{pool="${pool}",state="completed"} 1`);
    expect(res.text).toMatch(new RegExp(`gridx_queue_depth\\{pool="${pool}"\\} [01]`));
    expect(res.text).toContain(`gridx_workers_online{pool="${pool}"} 1`);
    expect(res.text).toMatch(new RegExp(`gridx_dispatch_latency_seconds_count\\{pool="${pool}"\\} [12]`));
    expect(res.text).toContain(`gridx_dispatch_latency_seconds_bucket{pool="${pool}",le="+Inf"}`);
    expect((await api("/metrics", { token: null })).status).toBe(401);
  });
});

describe("operator probes", () => {
  it("runs a probe on a connected worker through its agent and keeps an audit record", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool));
    const pending = api(`/v1/workers/${workerId}/probes`, { method: "POST", json: { command: "uptime", timeout_s: 5 } });
    const probe = await agent.next("probe");
    expect(probe.payload).toMatchObject({ command: "uptime", timeout_s: 5 });
    agent.send({ type: "probe_result", payload: { probe_id: probe.payload.probe_id, status: "completed", exit_code: 0, output: " 10:00 up 1 day", truncated: false, error: null } });
    const res = await pending;
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ id: probe.payload.probe_id, worker_id: workerId, command: "uptime", status: "completed", exit_code: 0, output: " 10:00 up 1 day", requested_by: "admin" });
    const audit = await api(`/v1/workers/${workerId}/probes`);
    expect(audit.json.probes.map((p: any) => [p.command, p.status])).toEqual([["uptime", "completed"]]);
  });

  it("records a refusal from the agent's allowlist", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool));
    const pending = api(`/v1/workers/${workerId}/probes`, { method: "POST", json: { command: "rm -rf /" } });
    const probe = await agent.next("probe");
    agent.send({ type: "probe_result", payload: { probe_id: probe.payload.probe_id, status: "refused", exit_code: null, output: "", truncated: false, error: "not on this worker's probe allowlist" } });
    expect((await pending).json).toMatchObject({ status: "refused", error: expect.stringMatching(/allowlist/) });
  });

  it("is for operators only, validates the command, and needs a connected worker", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool));
    const { token: user } = await userToken();
    expect((await api(`/v1/workers/${workerId}/probes`, { method: "POST", json: { command: "uptime" }, token: user })).status).toBe(403);
    const empty = await api(`/v1/workers/${workerId}/probes`, { method: "POST", json: { command: "" } });
    expect(empty.status).toBe(400);
    expect(empty.json.error.field).toBe("command");
    expect((await api(`/v1/workers/${workerId}/probes`, { method: "POST", json: { command: "x", timeout_s: 9999 } })).json.error.field).toBe("timeout_s");
    expect((await api(`/v1/workers/w_nope/probes`, { method: "POST", json: { command: "uptime" } })).status).toBe(404);
    agent.close();
    await sleep(200);
    const offline = await api(`/v1/workers/${workerId}/probes`, { method: "POST", json: { command: "uptime" } });
    expect(offline.status).toBe(409);
    expect(offline.json.error.message).toMatch(/offline/);
  });
});
