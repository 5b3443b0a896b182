import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { HEARTBEAT_FRAME } from "../../protocol/index.ts";
import type { WorkflowEngine } from "../../control-plane/src/workflows/engine.ts";
import { pollUntil } from "../helpers/poll.ts";
import { agentToken, api, caps, FakeAgent, submit, uniquePool, userToken, waitForJob } from "./helpers.ts";

const beats: ReturnType<typeof setInterval>[] = [];
afterEach(() => beats.splice(0).forEach(clearInterval));

/** An agent with `slots` slots that keeps its worker alive (WORKER_TIMEOUT_S is 2 in tests). */
async function worker(pool: string, slots = 1, over: Parameters<typeof caps>[0] = {}) {
  const { agent, workerId } = await FakeAgent.join(await agentToken(pool), { slots, caps: caps(over) });
  beats.push(setInterval(() => agent.closed || agent.sendRaw(HEARTBEAT_FRAME), 300));
  return { agent, workerId };
}

/** Takes the next assignment and ends it with `exitCode` (and `usage`, if given); returns its payload. */
async function run(agent: FakeAgent, exitCode = 0, usage?: { cpu_s: number; peak_memory_mb: number; gpu_s: number; wall_s: number }) {
  const { payload } = await agent.next("assign_job", 5000);
  const ref = { job_id: payload.job_id, attempt: payload.attempt };
  agent.send({ type: "job_started", payload: ref });
  agent.send({ type: "job_result", payload: { ...ref, exit_code: exitCode, failure_reason: exitCode === 0 ? null : "exit_code", message: null, ...(usage ? { usage } : {}) } });
  await agent.next("result_ack");
  return payload;
}

describe("array jobs", () => {
  it("submits N tasks in one request, each with its index, and summarises them by state", async () => {
    const pool = uniquePool();
    const first = await submit({ pool, name: "sweep", array: { count: 5 } });
    expect(first.status).toBe(201);
    expect(first.json).toMatchObject({ array_index: 0, spec: { array: { count: 5, index: 0 } } });
    const arrayId = first.json.array_id as string;
    expect(arrayId).toMatch(/^a_/);
    const tasks = (await api(`/v1/jobs?array=${arrayId}&limit=10`)).json.jobs as { array_index: number }[];
    expect(tasks.map((t) => t.array_index).sort()).toEqual([0, 1, 2, 3, 4]);
    expect((await api(`/v1/arrays/${arrayId}`)).json).toMatchObject({ count: 5, status: "queued", counts: { queued: 5 }, name: "sweep", first_job: first.json.id });

    const { agent } = await worker(pool, 1);
    const seen = new Set<number>();
    for (let i = 0; i < 5; i++) seen.add((await run(agent, i === 3 ? 1 : 0)).spec.array!.index!);
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4]);
    const done = await waitFor(`/v1/arrays/${arrayId}`, (a) => a.counts.completed + a.counts.failed === 5);
    expect(done).toMatchObject({ status: "failed", counts: { completed: 4, failed: 1 }, failed_indices: [3] });
  });

  it("writes a large array in a bounded number of statements, whatever its count", async () => {
    const small = await submit({ pool: uniquePool(), array: { count: 10 } });
    const large = await submit({ pool: uniquePool(), array: { count: 3000 } });
    expect(large.status).toBe(201);
    expect((await api(`/v1/arrays/${large.json.array_id}`)).json.counts.queued).toBe(3000);
    // The checks cost the same; tasks after the first go 1,000 to an INSERT (9 → 1, 2,999 → 3).
    expect(Number(large.headers.get("gridx-d1-statements")) - Number(small.headers.get("gridx-d1-statements"))).toBe(2);
  });

  it("cancels every unfinished task of an array, leaving the finished ones", async () => {
    const pool = uniquePool();
    const first = (await submit({ pool, array: { count: 4 } })).json;
    const { agent } = await worker(pool, 1);
    await run(agent, 0);
    const running = await agent.next("assign_job");
    agent.send({ type: "job_started", payload: { job_id: running.payload.job_id, attempt: 1 } });
    await waitForJob(running.payload.job_id, (j) => j.status === "running");
    const canceled = await api(`/v1/arrays/${first.array_id}/cancel`, { method: "POST" });
    expect(canceled.status).toBe(200);
    expect((await agent.next("cancel_job")).payload.job_id).toBe(running.payload.job_id);
    expect((await api(`/v1/arrays/${first.array_id}`)).json).toMatchObject({ status: "canceled", counts: { completed: 1, canceled: 3 } });
  });

  it("gives a retried array submit (same Idempotency-Key) the same array, not another", async () => {
    const pool = uniquePool();
    const headers = { "Idempotency-Key": `arr-${pool}` };
    const first = await submit({ pool, array: { count: 20 } }, headers);
    const again = await submit({ pool, array: { count: 20 } }, headers);
    expect([first.status, again.status]).toEqual([201, 200]);
    expect(again.json.array_id).toBe(first.json.array_id);
    expect((await api(`/v1/pools`)).json.pools.find((p: { pool: string }) => p.pool === pool).queued).toBe(20);
  });

  it("makes an array of one a real array: its task sees its index", async () => {
    const one = (await submit({ pool: uniquePool(), array: { count: 1 }, inputs: [] })).json;
    expect(one).toMatchObject({ array_index: 0, spec: { array: { count: 1, index: 0 } } });
    expect((await api(`/v1/arrays/${one.array_id}`)).json.count).toBe(1);
  });

  it("bounds the count and refuses {index} outside an array, naming the field", async () => {
    const big = await submit({ array: { count: 10_001 } });
    expect(big.status).toBe(400);
    expect(big.json.error.field).toBe("array.count");
    const stray = await submit({ inputs: [{ dataset: "shard-{index}", path: "data.csv" }] });
    expect(stray.status).toBe(400);
    expect(stray.json.error.field).toBe("inputs.0.dataset");
  });

  it("hides another project's array", async () => {
    const first = (await submit({ array: { count: 2 } })).json;
    const outsider = await userToken({ project: `pr-${crypto.randomUUID().slice(0, 6)}` });
    expect((await api(`/v1/arrays/${first.array_id}`, { token: outsider.token })).status).toBe(404);
    expect((await api(`/v1/arrays/${first.array_id}/cancel`, { method: "POST", token: outsider.token })).status).toBe(404);
  });
});

describe("dependencies", () => {
  it("settles, on its backstop round, a dependent whose parent's end it had read before the dependent was settled", async () => {
    const pool = uniquePool();
    // The child waits in a pool without workers, so once released it stays queued, saying so.
    const idle = uniquePool();
    const parent = (await submit({ pool })).json;
    const child = (await submit({ pool: idle, depends_on: [{ job: parent.id }] })).json;
    const { agent } = await worker(pool, 1);
    await run(agent);
    const released = `no worker of pool ${idle} is online`;
    await waitForJob(child.id, (j) => j.pending_reason === released);
    // As if its settle had failed after its insert: held again, with its parent's event long read.
    await env.DB.prepare("UPDATE jobs SET hold = 'deps' WHERE id = ?1").bind(child.id).run();
    expect((await api(`/v1/jobs/${child.id}`)).json.pending_reason).toBe("waiting for its dependencies to be settled");
    const engine = env.WORKFLOWS.get(env.WORKFLOWS.idFromName("workflows"));
    // Its backstop round is due (as BACKSTOP_MS after the last one): it settles a page of waiting jobs.
    await runInDurableObject(engine, (instance: WorkflowEngine) => void Object.assign(instance, { backstopAt: 0 }));
    await engine.poke();
    await runDurableObjectAlarm(engine);
    await waitForJob(child.id, (j) => j.pending_reason === released);
  });

  it("holds a dependent in queued until its parent completes, then runs it", async () => {
    const pool = uniquePool();
    const parent = (await submit({ pool })).json;
    const child = (await submit({ pool, depends_on: [{ job: parent.id }] })).json;
    expect(child).toMatchObject({ status: "queued", pending_reason: `waiting for ${parent.id}`, parents: [{ job: parent.id, condition: "completed", status: "queued" }] });
    expect((await api(`/v1/jobs/${parent.id}`)).json.children).toEqual([{ job: child.id, condition: "completed", status: "queued" }]);
    const { agent } = await worker(pool, 1);
    expect((await run(agent)).job_id).toBe(parent.id);
    expect((await run(agent)).job_id).toBe(child.id);
    await waitForJob(child.id, (j) => j.status === "completed");
  });

  it("fails the dependents of a failed parent with the reason, down the chain, and runs a finished-dependent anyway", async () => {
    const pool = uniquePool();
    const parent = (await submit({ pool })).json;
    const child = (await submit({ pool, depends_on: [{ job: parent.id }] })).json;
    const grandchild = (await submit({ pool, depends_on: [{ job: child.id, condition: "completed" }] })).json;
    const cleanup = (await submit({ pool, depends_on: [{ job: parent.id, condition: "finished" }] })).json;
    const { agent } = await worker(pool, 1);
    await run(agent, 2);
    const failed = await waitForJob(child.id, (j) => j.status === "failed");
    expect(failed).toMatchObject({ failure_reason: "dependency_failed" });
    expect(failed.failure_message).toContain(parent.id);
    expect(await waitForJob(grandchild.id, (j) => j.status === "failed")).toMatchObject({ failure_reason: "dependency_failed" });
    expect((await run(agent)).job_id).toBe(cleanup.id);
  });

  it("cancels a dependent while it waits, and its parent's end then leaves it canceled", async () => {
    const pool = uniquePool();
    const parent = (await submit({ pool })).json;
    const child = (await submit({ pool, depends_on: [{ job: parent.id }] })).json;
    expect((await api(`/v1/jobs/${child.id}/cancel`, { method: "POST" })).json).toMatchObject({ status: "canceled", pending_reason: null });
    const { agent } = await worker(pool, 1);
    await run(agent);
    await waitForJob(parent.id, (j) => j.status === "completed");
    // A job queued after it is the next one assigned: the canceled child (older, same priority) was passed over.
    const later = (await submit({ pool })).json;
    expect((await agent.next("assign_job")).payload.job_id).toBe(later.id);
    expect((await api(`/v1/jobs/${child.id}`)).json.status).toBe("canceled");
  });

  it("waits for every task of an array it depends on", async () => {
    const pool = uniquePool();
    const first = (await submit({ pool, array: { count: 3 } })).json;
    const reduce = (await submit({ pool, depends_on: [{ job: first.array_id }] })).json;
    expect(reduce.pending_reason).toBe(`waiting for ${first.array_id}`);
    const { agent } = await worker(pool, 1);
    const order = [];
    for (let i = 0; i < 4; i++) order.push((await run(agent)).job_id);
    expect(order.at(-1)).toBe(reduce.id);
  });

  it("runs at once, or fails at once, against parents that have already ended", async () => {
    const pool = uniquePool();
    const { agent } = await worker(pool, 1);
    const ok = (await submit({ pool })).json;
    await run(agent, 0);
    await waitForJob(ok.id, (j) => j.status === "completed");
    const bad = (await submit({ pool })).json;
    await run(agent, 1);
    await waitForJob(bad.id, (j) => j.status === "failed");
    expect((await submit({ pool, depends_on: [{ job: ok.id }] })).json).toMatchObject({ status: expect.stringMatching(/queued|assigned/), pending_reason: expect.not.stringMatching(/waiting for j_/) });
    expect((await submit({ pool, depends_on: [{ job: bad.id }] })).json).toMatchObject({ status: "failed", failure_reason: "dependency_failed" });
  });

  it("refuses unknown, foreign and batch-only references, naming the field", async () => {
    const other = await userToken({ project: `pr-${crypto.randomUUID().slice(0, 6)}` });
    const theirs = (await api("/v1/jobs", { method: "POST", token: other.token, json: { kind: "python", python: { script: "1" }, project: other.project } })).json;
    for (const [job, field] of [
      ["j_0000000000000000000000000", "depends_on.0.job"],
      [theirs.id, "depends_on.0.job"],
      ["$1", "depends_on.0.job"],
    ] as const) {
      const res = await submit({ depends_on: [{ job }] });
      expect(res.status).toBe(400);
      expect(res.json.error.field).toBe(field);
    }
    const artifact = await submit({ inputs: [{ artifact: { job: theirs.id, name: "m.pt" }, path: "m.pt" }] });
    expect(artifact.json.error.field).toBe("inputs.0.artifact.job");
  });
});

describe("retries on failure", () => {
  it("requeues a failed attempt its policy names, after the backoff, and keeps every attempt", async () => {
    const pool = uniquePool();
    const job = (await submit({ pool, retry: { on: ["exit_code"], max: 2, backoff_s: 1 } })).json;
    const { agent } = await worker(pool, 1);
    expect((await run(agent, 3)).attempt).toBe(1);
    const waiting = await waitForJob(job.id, (j) => j.status === "queued" && j.attempt === 1);
    expect(waiting.pending_reason).toMatch(/^retrying after its backoff: attempt 2 is queued at /);
    expect(waiting.retry_at).not.toBeNull();
    expect(waiting.failure_message).toMatch(/^attempt 1 failed \(exit_code 3\); retrying in 1 s/);
    expect((await run(agent, 0)).attempt).toBe(2);
    const done = await waitForJob(job.id, (j) => j.status === "completed");
    expect(done.attempts.map((a: { exit_code: number }) => a.exit_code)).toEqual([3, 0]);
  });

  it("fails for good once the retries are spent, or on an outcome the policy does not name", async () => {
    const pool = uniquePool();
    const spent = (await submit({ pool, retry: { on: ["exit_code"], max: 1, backoff_s: 0 } })).json;
    const unnamed = (await submit({ pool, retry: { on: ["oom"], max: 3, backoff_s: 0 } })).json;
    const { agent } = await worker(pool, 1);
    for (let i = 0; i < 3; i++) await run(agent, 1);
    expect(await waitForJob(spent.id, (j) => j.status === "failed")).toMatchObject({ attempt: 2, failure_reason: "exit_code" });
    expect(await waitForJob(unnamed.id, (j) => j.status === "failed")).toMatchObject({ attempt: 1 });
  });
});

describe("usage, reruns, batches, queue_ttl_s", () => {
  it("records each attempt's usage, sums it on the job and in the pool's stats", async () => {
    const pool = uniquePool();
    const job = (await submit({ pool })).json;
    const { agent } = await worker(pool, 1);
    await run(agent, 0, { cpu_s: 1.5, peak_memory_mb: 210, gpu_s: 0, wall_s: 2 });
    const done = await waitForJob(job.id, (j) => j.status === "completed");
    expect(done.usage).toEqual({ cpu_s: 1.5, peak_memory_mb: 210, gpu_s: 0, wall_s: 2 });
    expect(done.attempts[0].usage).toEqual(done.usage);
    expect((await api(`/v1/pools/${pool}/stats`)).json.usage).toEqual({ attempts: 1, cpu_s: 1.5, gpu_s: 0, wall_s: 2 });
  });

  it("reruns a job stored before workflows existed: its spec gets the defaults", async () => {
    const old = (await submit({ pool: uniquePool() })).json;
    await env.DB.prepare("UPDATE jobs SET spec = json_remove(spec, '$.depends_on', '$.retry', '$.queue_ttl_s', '$.array') WHERE id = ?1").bind(old.id).run();
    const copy = await api(`/v1/jobs/${old.id}/rerun`, { method: "POST" });
    expect(copy.status).toBe(201);
    expect(copy.json).toMatchObject({ rerun_of: old.id, depends_on: [], retry: null, queue_ttl_s: null });
  });

  it("reruns a job as a copy that names the original; a viewer may not", async () => {
    const team = await userToken({ project: `pr-${crypto.randomUUID().slice(0, 6)}` });
    const viewer = await userToken({ project: team.project, role: "viewer" });
    const original = (await api("/v1/jobs", { method: "POST", token: team.token, json: { kind: "python", python: { script: "print(2)" }, project: team.project, name: "n" } })).json;
    const copy = await api(`/v1/jobs/${original.id}/rerun`, { method: "POST", token: team.token });
    expect(copy.status).toBe(201);
    expect(copy.json).toMatchObject({ rerun_of: original.id, name: "n", spec: { task: original.spec.task } });
    expect(copy.json.id).not.toBe(original.id);
    expect((await api(`/v1/jobs/${original.id}/rerun`, { method: "POST", token: viewer.token })).status).toBe(403);
  });

  it("submits a batch item by item, binding $N references, and refuses a cycle as a whole", async () => {
    const pool = uniquePool();
    const py = { kind: "python", pool, python: { script: "print(1)" } };
    const res = await api("/v1/jobs/batch", { method: "POST", json: { jobs: [py, { ...py, depends_on: [{ job: "$0" }] }, { ...py, limits: { timeout_s: 0 } }, { ...py, depends_on: [{ job: "$2" }] }] } });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ submitted: 2, refused: 2 });
    const [a, b, bad, orphan] = res.json.results;
    expect(b.job.depends_on).toEqual([{ job: a.job.id, condition: "completed" }]);
    expect(bad).toMatchObject({ status: 400, error: { field: "jobs.2.limits.timeout_s" } });
    expect(orphan).toMatchObject({ status: 400, error: { field: "jobs.3.depends_on.0.job" } });
    const cycle = await api("/v1/jobs/batch", { method: "POST", json: { jobs: [{ ...py, depends_on: [{ job: "$1" }] }, { ...py, depends_on: [{ job: "$0" }] }] } });
    expect(cycle.status).toBe(400);
    expect(cycle.json.error).toMatchObject({ field: "jobs.0.depends_on.0.job", message: "jobs.0.depends_on.0.job: a cycle: $0 → $1 → $0" });
    const huge = await api("/v1/jobs/batch", { method: "POST", json: { jobs: [{ ...py, array: { count: 6000 } }, { ...py, array: { count: 5000 } }] } });
    expect(huge.status).toBe(413);
    expect(huge.json.error.field).toBe("jobs");
    const again = await api("/v1/jobs/batch", { method: "POST", json: { jobs: [py] }, headers: { "Idempotency-Key": `k-${pool}` } });
    const repeat = await api("/v1/jobs/batch", { method: "POST", json: { jobs: [py] }, headers: { "Idempotency-Key": `k-${pool}` } });
    expect(repeat.json.results[0]).toMatchObject({ status: 200, job: { id: again.json.results[0].job.id } });
  });

  it("says why nothing can run a job, and fails it unschedulable after its queue_ttl_s", async () => {
    const pool = uniquePool();
    await worker(pool, 1, { memory_mb: 4096 });
    const job = (await submit({ pool, limits: { memory_mb: 102_400 }, queue_ttl_s: 1 })).json;
    expect(job.pending_reason).toBe("no online worker can ever fit it: needs 100 GiB memory, the largest online worker has 4 GiB");
    const failed = await waitForJob(job.id, (j) => j.status === "failed", 10_000);
    expect(failed).toMatchObject({ failure_reason: "unschedulable" });
    expect(failed.failure_message).toContain("needs 100 GiB memory");
  });
});

const waitFor = (path: string, pred: (body: any) => boolean, timeoutMs = 5000) => pollUntil(async () => (await api(path)).json, pred, { timeoutMs, intervalMs: 50, what: path });
