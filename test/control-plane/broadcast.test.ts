import { describe, expect, it } from "vitest";
import { broadcastTargets, type Candidate } from "../../control-plane/src/workflows/broadcast.ts";
import { pollUntil } from "../helpers/poll.ts";
import { agentToken, api, FakeAgent, submit, uniquePool, userToken, waitForJob } from "./helpers.ts";

const script = { kind: "python", python: { script: "import os; print(os.environ['GRIDX_JOB_ID'])" } };

/** A pool of fake agents, one slot each, named n1, n2, ... */
async function fleet(pool: string, n: number) {
  const token = await agentToken(pool);
  const agents: { agent: FakeAgent; workerId: string; name: string }[] = [];
  for (let i = 1; i <= n; i++) agents.push({ ...(await FakeAgent.join(token, { name: `n${i}` })), name: `n${i}` });
  return agents;
}

const workerStatus = (id: string, status: string) =>
  pollUntil(async () => (await api(`/v1/workers/${id}`)).json, (w) => w.status === status, { timeoutMs: 5000, intervalMs: 50, what: `worker ${id} ${status}` });

describe("broadcastTargets (pure)", () => {
  const w = (id: string, name: string, over: Partial<Candidate> = {}): Candidate => ({ id, name, online: true, draining: false, ...over });
  const pool = [w("w_2", "b"), w("w_1", "a"), w("w_3", "c", { online: false }), w("w_4", "d", { draining: true })];

  it("takes every online, undrained worker by name, or the listed ones as listed", () => {
    expect(broadcastTargets("p", pool, undefined, 10)).toEqual({ ids: ["w_1", "w_2"] });
    expect(broadcastTargets("p", pool, ["w_2", "w_1"], 10)).toEqual({ ids: ["w_2", "w_1"] });
  });

  it("refuses a listed worker that is unknown, offline, draining or twice, naming its place", () => {
    expect(broadcastTargets("p", pool, ["w_1", "w_9"], 10)).toEqual({ field: "workers.1", message: "workers.1: w_9 is not a worker of pool p", status: 400 });
    expect(broadcastTargets("p", pool, ["w_3"], 10)).toEqual({ field: "workers.0", message: "workers.0: w_3 (c) is offline", status: 400 });
    expect(broadcastTargets("p", pool, ["w_4"], 10)).toEqual({ field: "workers.0", message: "workers.0: w_4 (d) is draining", status: 400 });
    expect(broadcastTargets("p", pool, ["w_1", "w_1"], 10)).toMatchObject({ field: "workers.1", message: "workers.1: w_1 is listed twice" });
  });

  it("bounds the fan-out by BROADCAST_MAX_WORKERS and refuses a pool with no worker to run on", () => {
    expect(broadcastTargets("p", pool, undefined, 1)).toMatchObject({ field: "workers", status: 413 });
    expect(broadcastTargets("p", pool, ["w_1", "w_2"], 1)).toMatchObject({ field: "workers", status: 413 });
    expect(broadcastTargets("p", [w("w_3", "c", { online: false })], undefined, 10)).toEqual({ field: "pool", message: "pool: pool p has no online worker that takes jobs", status: 409 });
  });
});

describe("a job pinned to a worker", () => {
  it("runs only on its worker, though another is idle", async () => {
    const pool = uniquePool();
    const [first, second] = await fleet(pool, 2);
    const job = (await submit({ pool, worker: second!.workerId })).json;
    expect(job.spec.worker).toBe(second!.workerId);
    const assign = await second!.agent.next("assign_job");
    expect(assign.payload).toMatchObject({ job_id: job.id });
    expect(await first!.agent.receives("assign_job")).toBe(false);
    expect((await api(`/v1/jobs/${job.id}`)).json).toMatchObject({ status: "assigned", worker_id: second!.workerId });
    first!.agent.close();
    second!.agent.close();
  });

  it("waiting for a busy worker, however many, do not hide the project's other jobs from an idle one", async () => {
    const pool = uniquePool();
    const [one, two] = await fleet(pool, 2);
    // More than a round reads of a project's queue (its head is at least 32 jobs).
    const pinned = [];
    for (let i = 0; i < 40; i++) pinned.push((await submit({ pool, worker: one!.workerId })).json.id);
    // Forty submits queue forty scheduling rounds on the pool's coordinator; on a loaded machine
    // the last one's round comes seconds later, so these waits are longer than next()'s default.
    expect((await one!.agent.next("assign_job", 20_000)).payload.job_id).toBe(pinned[0]);
    const free = (await submit({ pool })).json;
    expect((await two!.agent.next("assign_job", 20_000)).payload.job_id).toBe(free.id);
    one!.agent.close();
    two!.agent.close();
  }, 60_000);

  it("is a 400 naming worker when its pool has no such worker", async () => {
    const pool = uniquePool();
    const [other] = await fleet(uniquePool(), 1);
    for (const worker of ["w_nope", other!.workerId]) {
      const res = await submit({ pool, worker });
      expect(res.status).toBe(400);
      expect(res.json.error).toMatchObject({ code: "validation_failed", field: "worker", message: `worker: pool ${pool} has no worker ${worker}` });
    }
    expect((await submit({ pool, worker: "nope" })).json.error.field).toBe("worker");
    other!.agent.close();
  });

  it("says it waits for its worker while that one is busy, and while it is offline", async () => {
    const pool = uniquePool();
    const [one, two] = await fleet(pool, 2);
    const busy = (await submit({ pool, worker: one!.workerId })).json;
    await one!.agent.next("assign_job");
    const waiting = (await submit({ pool, worker: one!.workerId })).json;
    expect(waiting.pending_reason).toBe(`waiting for a free slot on worker n1 (${one!.workerId})`);
    expect(await two!.agent.receives("assign_job")).toBe(false);
    two!.agent.close();
    await workerStatus(two!.workerId, "offline");
    const later = (await submit({ pool, worker: two!.workerId })).json;
    expect(later.pending_reason).toBe(`pinned to worker n2 (${two!.workerId}), which is offline`);
    expect((await api(`/v1/jobs/${busy.id}`)).json.status).toBe("assigned");
    one!.agent.close();
  });
});

describe("POST /v1/pools/:pool/broadcast", () => {
  it("queues one job per online worker, each lands on its own worker, and GET shows every result", async () => {
    const pool = uniquePool();
    const agents = await fleet(pool, 3);
    const created = await api(`/v1/pools/${pool}/broadcast`, { method: "POST", json: { job: { ...script, name: "hostnames" } } });
    expect(created.status).toBe(201);
    expect(created.json.id).toMatch(/^b_/);
    expect(created.json.jobs.map((j: { worker: string }) => j.worker)).toEqual(agents.map((a) => a.workerId));
    const exitCodes = [0, 0, 3];
    for (const [i, { agent, workerId }] of agents.entries()) {
      const { job_id } = created.json.jobs[i];
      const assign = await agent.next("assign_job");
      expect(assign.payload).toMatchObject({ job_id, spec: { worker: workerId, pool, name: "hostnames" } });
      agent.send({ type: "job_started", payload: { job_id, attempt: 1 } });
      const code = exitCodes[i]!;
      agent.send({ type: "job_result", payload: { job_id, attempt: 1, exit_code: code, failure_reason: code ? "exit_code" : null, message: null } });
      await waitForJob(job_id, (j) => j.status === (code ? "failed" : "completed"));
    }
    const view = await api(`/v1/broadcasts/${created.json.id}`);
    expect(view.status).toBe(200);
    expect(view.json).toMatchObject({ id: created.json.id, project: "default", pool, name: "hostnames", submitted_by: "admin", done: true });
    expect(view.json.counts).toEqual({ queued: 0, assigned: 0, running: 0, completed: 2, failed: 1, canceled: 0 });
    expect(view.json.workers).toEqual(
      agents.map((a, i) => ({
        worker_id: a.workerId,
        worker_name: a.name,
        job_id: created.json.jobs[i].job_id,
        status: exitCodes[i] ? "failed" : "completed",
        exit_code: exitCodes[i],
        failure_reason: exitCodes[i] ? "exit_code" : null,
        finished_at: expect.any(String),
      })),
    );
    const audit = await api(`/v1/audit?action=pool.broadcast`);
    expect(audit.json.events.find((e: { target: string }) => e.target === created.json.id)).toMatchObject({ detail: { pool, workers: 3 } });
    // Deleting its jobs (retention's one path) takes them out of the broadcast; the last takes the broadcast.
    const ids: string[] = created.json.jobs.map((j: { job_id: string }) => j.job_id);
    expect((await api(`/v1/jobs/${ids[0]}`, { method: "DELETE" })).status).toBe(204);
    expect((await api(`/v1/broadcasts/${created.json.id}`)).json.workers.map((w: { job_id: string }) => w.job_id)).toEqual(ids.slice(1));
    for (const id of ids.slice(1)) expect((await api(`/v1/jobs/${id}`, { method: "DELETE" })).status).toBe(204);
    expect((await api(`/v1/broadcasts/${created.json.id}`)).status).toBe(404);
    for (const { agent } of agents) agent.close();
  });

  it("runs on the listed workers only, and is not done while one's job is unfinished", async () => {
    const pool = uniquePool();
    const [one, two, three] = await fleet(pool, 3);
    const created = await api(`/v1/pools/${pool}/broadcast`, { method: "POST", json: { job: script, workers: [three!.workerId, one!.workerId] } });
    expect(created.status).toBe(201);
    expect(created.json.jobs.map((j: { worker: string }) => j.worker)).toEqual([three!.workerId, one!.workerId]);
    await three!.agent.next("assign_job");
    await one!.agent.next("assign_job");
    expect(await two!.agent.receives("assign_job")).toBe(false);
    const view = (await api(`/v1/broadcasts/${created.json.id}`)).json;
    expect(view).toMatchObject({ done: false, counts: { assigned: 2 } });
    expect(view.workers.map((w: { worker_name: string }) => w.worker_name)).toEqual(["n1", "n3"]);
    for (const a of [one, two, three]) a!.agent.close();
  });

  it("refuses bad bodies naming the field, and a pool with no worker to run on", async () => {
    const pool = uniquePool();
    const [one, two] = await fleet(pool, 2);
    await api(`/v1/workers/${two!.workerId}/drain`, { method: "POST" });
    const post = (json: unknown) => api(`/v1/pools/${pool}/broadcast`, { method: "POST", json });
    const cases: [unknown, number, string][] = [
      [{ job: script, workers: ["w_nope"] }, 400, "workers.0"],
      [{ job: script, workers: [two!.workerId] }, 400, "workers.0"],
      [{ job: script, workers: ["bad id"] }, 400, "workers.0"],
      [{ job: script, workers: [] }, 400, "workers"],
      [{ job: { ...script, pool: "elsewhere" } }, 400, "job.pool"],
      [{ job: { ...script, worker: one!.workerId } }, 400, "job.worker"],
      [{ job: { ...script, array: { count: 2 } } }, 400, "job.array"],
      [{ job: { ...script, limits: { timeout_s: 0 } } }, 400, "job.limits.timeout_s"],
      [{ job: { ...script, secrets: { TOKEN: "missing" } } }, 400, "job.secrets.TOKEN"],
      [{ job: { ...script, project: "no-such-project" } }, 404, "job.project"],
      [{ workers: [one!.workerId] }, 400, "job"],
      [{ job: script, extra: 1 }, 400, "extra"],
    ];
    for (const [json, status, field] of cases) {
      const res = await post(json);
      expect({ json, status: res.status, field: res.json.error?.field }).toEqual({ json, status, field });
    }
    one!.agent.close();
    await workerStatus(one!.workerId, "offline");
    const none = await post({ job: script });
    expect(none.status).toBe(409);
    expect(none.json.error).toMatchObject({ field: "pool", message: `pool: pool ${pool} has no online worker that takes jobs` });
    // Nothing refused left a job behind.
    expect((await api(`/v1/jobs?pool=${pool}`)).json.jobs).toEqual([]);
    two!.agent.close();
  });

  it("takes a member of the job's project; readers of the project see it, others do not", async () => {
    const pool = uniquePool();
    const project = `pr-${crypto.randomUUID().slice(0, 8)}`;
    const member = await userToken({ project, role: "member" });
    const viewer = await userToken({ project, role: "viewer" });
    const outsider = await userToken({ project: "default", role: "member" });
    const [one] = await fleet(pool, 1);
    const body = { job: { ...script, project } };
    const refused = await api(`/v1/pools/${pool}/broadcast`, { method: "POST", json: body, token: viewer.token });
    expect(refused.status).toBe(403);
    expect((await api(`/v1/pools/${pool}/broadcast`, { method: "POST", json: body, token: outsider.token })).status).toBe(404);
    const created = await api(`/v1/pools/${pool}/broadcast`, { method: "POST", json: body, token: member.token });
    expect(created.status).toBe(201);
    const path = `/v1/broadcasts/${created.json.id}`;
    expect((await api(path, { token: viewer.token })).json).toMatchObject({ project, submitted_by: member.user, counts: { assigned: expect.any(Number) } });
    const hidden = await api(path, { token: outsider.token });
    expect(hidden.status).toBe(404);
    expect(hidden.json.error.message).toBe(`no broadcast ${created.json.id}`);
    expect((await api("/v1/broadcasts/b_nope")).status).toBe(404);
    one!.agent.close();
  });
});
