import { env, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { HEARTBEAT_FRAME } from "../../protocol/index.ts";
import { pollUntil } from "../helpers/poll.ts";
import { agentToken, api, caps, FakeAgent, submit, uniquePool, waitForJob } from "./helpers.ts";

/*
 * The coordinator's fault paths and trust checks, inside workerd with D1. Each test names the
 * invariant it holds: a job ends exactly once, in its right state; only the worker holding an
 * attempt changes it; a fault delays work, never loses it.
 */

const runAlarm = (pool: string) => runDurableObjectAlarm(env.COORDINATOR.get(env.COORDINATOR.idFromName(pool)));

const inject = (pool: string, fault: Record<string, unknown>) => api("/v1/test/faults", { method: "POST", json: { pool, ...fault } });

/** A counter's value for a pool in /metrics (0 when absent). */
async function counter(name: string, pool: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await api("/metrics")).text;
  const want = [`pool="${pool}"`, ...Object.entries(labels).map(([k, v]) => `${k}="${v}"`)];
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
  return line ? Number(line.split(" ").pop()) : 0;
}

async function runningJob(pool: string, agent: FakeAgent, body: Record<string, unknown> = {}) {
  const job = (await submit({ pool, ...body })).json;
  await agent.next("assign_job");
  agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
  await waitForJob(job.id, (j) => j.status === "running");
  return job;
}

const result = (jobId: string, attempt = 1, exit_code = 0) => ({
  type: "job_result" as const,
  payload: { job_id: jobId, attempt, exit_code, failure_reason: exit_code === 0 ? null : ("exit_code" as const), message: null },
});

describe("coordinator: faults delay work, never lose it", () => {
  it("settles a result whose D1 write fails, by retrying it, and acknowledges it only once stored", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = await runningJob(pool, agent);
    expect((await inject(pool, { d1: { fail_next: 3, match: "UPDATE attempts SET status = v.status" } })).json.injected).toBe(0);
    agent.send(result(job.id));
    expect((await agent.next("result_ack", 10_000)).payload).toEqual({ job_id: job.id, attempt: 1 });
    expect(await waitForJob(job.id, (j) => j.status === "completed")).toMatchObject({ attempt: 1, exit_code: 0 });
    expect(await counter("gridx_settlement_retries_total", pool)).toBe(3);
    agent.close();
  });

  it("keeps sweeping through a D1 outage: the alarm fails, is re-armed, and requeues a lost worker's job once D1 is back", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const { agent } = await FakeAgent.join(token, { name: "gone" });
    const job = await runningJob(pool, agent, { max_retries: 1 });
    agent.close();
    await pollUntil(async () => (await api(`/v1/workers?pool=${pool}`)).json.workers[0].status, (s) => s === "offline", { timeoutMs: 5000, intervalMs: 50, what: "worker offline" });
    // Every D1 call of this coordinator fails for a while: its sweeps fail and are counted.
    await inject(pool, { d1: { fail_next: 10_000 } });
    await runAlarm(pool);
    expect(await counter("gridx_alarm_failures_total", pool)).toBeGreaterThan(0);
    expect((await api(`/v1/jobs/${job.id}`)).json.status).toBe("running");
    await inject(pool, { d1: { fail_next: 0 } });
    // No submit or connect re-arms it: the sweep that failed scheduled the next one itself.
    const requeued = await waitForJob(job.id, (j) => j.status === "queued", 15_000);
    expect(requeued.failure_message).toMatch(/went silent/);
  });

  it("stores a log batch whose D1 write fails by retrying it, before the result that follows it", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = await runningJob(pool, agent);
    // The job's log stream writes its log; the coordinator retries the hand-over until it is stored.
    await inject(pool, { log_stream_of: job.id, d1: { fail_next: 2, match: 'insert into "log_chunks"' } });
    agent.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 0, lines: [{ stream: "stdout", text: "kept", ts: 1 }] } });
    agent.send(result(job.id));
    await agent.next("result_ack", 10_000);
    expect(await waitForJob(job.id, (j) => j.status === "completed")).toMatchObject({ stdout: "kept\n" });
    expect((await inject(pool, { log_stream_of: job.id, d1: { fail_next: 0 } })).json.injected).toBe(2);
    agent.close();
  });

  it("records a hello whose D1 write fails by retrying it: the agent is greeted, not dropped", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    // Bind the coordinator to its pool first, so the fault lands on the hello's write.
    await submit({ pool });
    await inject(pool, { d1: { fail_next: 2, match: 'insert into "workers"' } });
    const { agent, workerId } = await FakeAgent.join(token, { name: "patient" });
    expect(workerId).toMatch(/^w/);
    expect((await inject(pool, { d1: { fail_next: 0 } })).json.injected).toBe(2);
    expect(agent.closed).toBeNull();
    agent.close();
  });

  it("retries a scheduling round whose assignment write failed: the job is assigned once, to one worker", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    await inject(pool, { d1: { fail_next: 1, match: "UPDATE jobs SET status = 'assigned'" } });
    const job = (await submit({ pool })).json;
    // The failed round leaves the job queued; the next sweep schedules it.
    await runAlarm(pool);
    const assign = await agent.next("assign_job", 10_000);
    expect(assign.payload).toMatchObject({ job_id: job.id, attempt: 1 });
    agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
    agent.send(result(job.id));
    await agent.next("result_ack");
    expect(await waitForJob(job.id, (j) => j.status === "completed")).toMatchObject({ attempt: 1 });
    expect(await agent.receives("assign_job", 300)).toBe(false);
    agent.close();
  });
});

describe("coordinator: only the worker holding an attempt may change it", () => {
  it("refuses another worker's logs, start and result with error frames, counts them, and leaves the job untouched", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const { agent: owner } = await FakeAgent.join(token, { name: "owner" });
    const { agent: intruder } = await FakeAgent.join(await agentToken(pool, "other"), { name: "intruder" });
    const job = await runningJob(pool, owner);
    owner.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 5, lines: [{ stream: "stdout", text: "real", ts: 1 }] } });
    await waitForJob(job.id, (j) => j.stdout === "real\n");

    intruder.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 0, lines: [{ stream: "stdout", text: "forged", ts: 1 }] } });
    expect((await intruder.next("error")).payload).toMatchObject({ code: "forbidden", message: expect.stringContaining("not this worker's") });
    intruder.send(result(job.id, 1, 0));
    expect((await intruder.next("error")).payload.code).toBe("forbidden");
    intruder.send({ type: "job_log", payload: { job_id: "j_does_not_exist", attempt: 1, seq: 0, lines: [{ stream: "stdout", text: "x", ts: 1 }] } });
    expect((await intruder.next("error")).payload.code).toBe("forbidden");
    expect(await intruder.receives("result_ack", 200)).toBe(false);

    expect((await api(`/v1/jobs/${job.id}`)).json).toMatchObject({ status: "running", stdout: "real\n" });
    expect(await counter("gridx_agent_messages_refused_total", pool, { type: "job_log" })).toBe(2);
    expect(await counter("gridx_agent_messages_refused_total", pool, { type: "job_result" })).toBe(1);

    owner.send(result(job.id));
    await owner.next("result_ack");
    expect(await waitForJob(job.id, (j) => j.status === "completed")).toMatchObject({ stdout: "real\n" });
    owner.close();
    intruder.close();
  });

  it("fences a stale attempt's late result and logs: acknowledged so the agent stops re-sending, but the job shows the winning attempt only", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const { agent: first } = await FakeAgent.join(token, { name: "first" });
    const job = await runningJob(pool, first, { max_retries: 1 });
    // Cancel through the record: the worker goes silent and its attempt is lost.
    await new Promise((r) => setTimeout(r, 2300));
    await runAlarm(pool);
    await waitForJob(job.id, (j) => j.status === "queued");
    const { agent: second } = await FakeAgent.join(token, { name: "second" });
    await second.next("assign_job");
    second.send({ type: "job_started", payload: { job_id: job.id, attempt: 2 } });
    second.send({ type: "job_log", payload: { job_id: job.id, attempt: 2, seq: 0, lines: [{ stream: "stdout", text: "winner", ts: 1 }] } });
    second.send(result(job.id, 2, 0));
    await second.next("result_ack");
    await waitForJob(job.id, (j) => j.status === "completed");

    // The first worker comes back and reports attempt 1 late.
    const back = await FakeAgent.join(token, { name: "first", running: [{ job_id: job.id, attempt: 1 }] });
    expect((await back.agent.next("cancel_job")).payload).toMatchObject({ job_id: job.id, attempt: 1, reason: "stale" });
    back.agent.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 0, lines: [{ stream: "stdout", text: "late", ts: 2 }] } });
    back.agent.send(result(job.id, 1, 3));
    expect((await back.agent.next("result_ack")).payload).toEqual({ job_id: job.id, attempt: 1 });
    expect((await api(`/v1/jobs/${job.id}`)).json).toMatchObject({ status: "completed", attempt: 2, exit_code: 0, stdout: "winner\n" });
    expect(await counter("gridx_agent_messages_fenced_total", pool, { type: "job_result" })).toBe(1);
    const attempts = (await api(`/v1/jobs/${job.id}/attempts`)).json.attempts;
    expect(attempts.map((a: any) => a.status)).toEqual(["lost", "finished"]);
    back.agent.close();
    second.close();
  });

  it("requeues a job whose agent reports it lost (its lease lapsed), while retries remain", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = await runningJob(pool, agent, { max_retries: 1 });
    agent.send({ type: "job_result", payload: { job_id: job.id, attempt: 1, exit_code: 137, failure_reason: "worker_lost", message: "this worker lost its lease" } });
    await agent.next("result_ack");
    // Requeued, and the free worker gets attempt 2 rather than the job failing.
    expect((await agent.next("assign_job", 5000)).payload).toMatchObject({ job_id: job.id, attempt: 2 });
    const attempts = (await api(`/v1/jobs/${job.id}/attempts`)).json.attempts;
    expect(attempts[0]).toMatchObject({ attempt: 1, status: "lost" });
    agent.close();
  });

  it("takes one hello per connection: a second, for another worker, is refused and the first stays", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool), { name: "first-name" });
    agent.send({ type: "hello", payload: { agent_version: "x", name: "second-name", slots: 1, caps: caps(), running: [] } });
    expect((await agent.next("error")).payload.message).toMatch(/said hello already/);
    const job = await runningJob(pool, agent);
    expect((await api(`/v1/jobs/${job.id}`)).json.worker_id).toBe(workerId);
    expect((await api(`/v1/workers?pool=${pool}`)).json.workers.map((w: any) => w.name)).toEqual(["first-name"]);
    agent.close();
  });

  it("keeps a reconnected worker's results when its old socket closes after the new one said hello", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const { agent: old } = await FakeAgent.join(token, { name: "flappy" });
    const job = await runningJob(pool, old);
    // The agent redials before the coordinator has seen its old line drop.
    const fresh = await FakeAgent.join(token, { name: "flappy", running: [{ job_id: job.id, attempt: 1 }] });
    old.close();
    fresh.agent.send(result(job.id));
    expect((await fresh.agent.next("result_ack")).payload).toEqual({ job_id: job.id, attempt: 1 });
    expect(await waitForJob(job.id, (j) => j.status === "completed")).toMatchObject({ attempt: 1, exit_code: 0 });
    expect((await api(`/v1/workers?pool=${pool}`)).json.workers[0].status).toBe("online");
    fresh.agent.close();
  });

  it("completes a probe only from the worker it was sent to", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool), { name: "target" });
    const { agent: other } = await FakeAgent.join(await agentToken(pool, "o"), { name: "bystander" });
    const started = api(`/v1/workers/${workerId}/probes`, { method: "POST", json: { command: "uptime", timeout_s: 5 } });
    const probe = await agent.next("probe", 5000);
    const answer = { probe_id: probe.payload.probe_id, status: "completed" as const, exit_code: 0, output: "forged", truncated: false, error: null };
    other.send({ type: "probe_result", payload: answer });
    expect((await other.next("error")).payload.message).toMatch(/not sent to this worker/);
    agent.send({ type: "probe_result", payload: { ...answer, output: "up 1 day" } });
    const done = await started;
    expect(done.json).toMatchObject({ status: "completed", output: "up 1 day" });
    agent.close();
    other.close();
  });
});

describe("coordinator: identity and bounds", () => {
  it("binds a worker to the token that created it: another token cannot take its name, socket or attempts", async () => {
    const pool = uniquePool();
    const { agent: real, workerId } = await FakeAgent.join(await agentToken(pool, "real"), { name: "gpu-1" });
    const job = await runningJob(pool, real);
    const impostor = await FakeAgent.connect(await agentToken(pool, "impostor"));
    impostor.send({ type: "hello", payload: { agent_version: "x", name: "gpu-1", slots: 1, caps: caps(), running: [] } });
    expect((await impostor.next("error")).payload.message).toMatch(/belongs to another agent token/);
    await pollUntil(async () => impostor.closed, (c) => c !== null, { timeoutMs: 3000, intervalMs: 20, what: "impostor closed" });
    expect(impostor.closed!.code).toBe(4005);
    expect(real.closed).toBeNull();
    expect((await api(`/v1/jobs/${job.id}`)).json).toMatchObject({ status: "running", worker_id: workerId, attempt: 1 });
    real.send(result(job.id));
    await real.next("result_ack");
    await waitForJob(job.id, (j) => j.status === "completed");
    real.close();
  });

  it("lets a machine given a new token keep its name once the old token is revoked", async () => {
    const pool = uniquePool();
    const old = (await api("/v1/agent-tokens", { method: "POST", json: { pool, name: "old" } })).json;
    const { agent, workerId } = await FakeAgent.join(old.token, { name: "box" });
    agent.close();
    // Revocation has no route yet (projects and roles bring one): the record says it.
    await env.DB.prepare("UPDATE tokens SET revoked_at = ?1 WHERE id = ?2").bind(Date.now(), old.id).run();
    const again = await FakeAgent.join(await agentToken(pool, "new"), { name: "box" });
    expect(again.workerId).toBe(workerId);
    again.agent.close();
  });

  it("refuses capabilities past their bounds, and log lines longer than the agent's own cut", async () => {
    const pool = uniquePool();
    const greedy = await FakeAgent.connect(await agentToken(pool));
    greedy.send({ type: "hello", payload: { agent_version: "x", name: "big", slots: 1, caps: caps({ cpu_cores: 1e300, memory_mb: 1e15 }), running: [] } });
    expect((await greedy.next("error")).payload).toMatchObject({ code: "bad_message", message: expect.stringMatching(/cpu_cores|memory_mb/) });
    expect(await greedy.receives("hello_ack", 200)).toBe(false);
    greedy.close();

    const { agent } = await FakeAgent.join(await agentToken(pool, "b"), { name: "b" });
    const job = await runningJob(pool, agent);
    agent.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 0, lines: [{ stream: "stdout", text: "x".repeat(200_000), ts: 1 }] } });
    expect((await agent.next("error")).payload).toMatchObject({ code: "bad_message", message: expect.stringContaining("lines.0.text") });
    expect((await api(`/v1/jobs/${job.id}`)).json.stdout).toBe("");
    agent.close();
  });

  it("takes back an assignment the agent never takes, and tells it to drop it", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool, max_retries: 1 })).json;
    await agent.next("assign_job");
    // START_TIMEOUT_S is 3 in tests; the agent neither accepts nor starts, but stays alive.
    const cancel = await pollUntil(
      async () => {
        agent.sendRaw(HEARTBEAT_FRAME);
        await runAlarm(pool);
        return agent.next("cancel_job", 500).catch(() => null);
      },
      (c) => c !== null,
      { timeoutMs: 10_000, intervalMs: 0, what: "cancel_job" },
    );
    expect(cancel!.payload).toMatchObject({ job_id: job.id, attempt: 1, reason: "stale" });
    const attempts = (await api(`/v1/jobs/${job.id}/attempts`)).json.attempts;
    expect(attempts[0]).toMatchObject({ attempt: 1, status: "lost" });
    expect((await api(`/v1/jobs/${job.id}`)).json.failure_message).toMatch(/START_TIMEOUT_S/);
    // Requeued: the free worker gets attempt 2.
    expect((await agent.next("assign_job", 5000)).payload).toMatchObject({ job_id: job.id, attempt: 2 });
    agent.close();
  });

  it("gives a taken assignment the preparation bound instead of the start bound", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool })).json;
    await agent.next("assign_job");
    agent.send({ type: "job_accepted", payload: { job_id: job.id, attempt: 1 } });
    // Accepted: its deadline moved to PREPARE_TIMEOUT_S (6 s) past the acceptance.
    const attempt = await pollUntil(
      () => env.DB.prepare("SELECT status, assigned_at, deadline_at FROM attempts WHERE job_id = ?1").bind(job.id).first<{ status: string; assigned_at: number; deadline_at: number }>(),
      (a) => a !== null && a.deadline_at - a.assigned_at > 3000,
      { timeoutMs: 3000, intervalMs: 50, what: "deadline moved" },
    );
    expect(attempt!.status).toBe("assigned");
    agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
    agent.send(result(job.id));
    await agent.next("result_ack");
    expect(await waitForJob(job.id, (j) => j.status === "completed")).toMatchObject({ attempt: 1 });
    agent.close();
  });

  it("counts a silent worker's requeue clock from its last heartbeat, not from when its socket was dropped", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool), { name: "frozen" });
    const job = await runningJob(pool, agent, { max_retries: 1 });
    agent.sendRaw(HEARTBEAT_FRAME);
    await agent.next("heartbeat_ack");
    const closed = await pollUntil(
      async () => {
        await runAlarm(pool);
        return agent.closed ? Date.now() : null;
      },
      (t) => t !== null,
      { timeoutMs: 10_000, intervalMs: 200, what: "socket dropped as silent" },
    );
    expect(agent.closed!.code).toBe(4003);
    const worker = (await api(`/v1/workers?pool=${pool}`)).json.workers.find((w: any) => w.id === workerId);
    // Dropped only after WORKER_TIMEOUT_S (2 s) of silence, so the last heartbeat is that much earlier.
    expect(Date.parse(worker.last_seen)).toBeLessThan(closed! - 2000);
    // Silence that long is the requeue's condition already: the sweep that dropped the socket requeued the job.
    const requeued = await waitForJob(job.id, (j) => j.status === "queued" || j.attempt === 2, 3000);
    expect(requeued.failure_message ?? "").toMatch(/went silent|lost/);
  });
});
