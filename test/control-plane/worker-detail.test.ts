import { describe, expect, it } from "vitest";
import { pollUntil } from "../helpers/poll.ts";
import { agentToken, api, caps, FakeAgent, newProject, submit, uniquePool, userToken } from "./helpers.ts";

describe("one worker's detail, and forgetting an offline one", () => {
  it("shows what it holds and ran to those who read the jobs' projects, and no one else", async () => {
    const pool = uniquePool();
    const project = await newProject();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool), { name: "detail-1", agent_version: "0.1.0", warm: { envs: ["env-1"], repos: [] } });
    const job = (await submit({ pool, project })).json;
    const assigned = await agent.next("assign_job");
    expect(assigned.payload.job_id).toBe(job.id);

    const detail = await api(`/v1/workers/${workerId}`);
    expect(detail.status).toBe(200);
    expect(detail.json).toMatchObject({ id: workerId, name: "detail-1", pool, status: "online", agent_version: "0.1.0", slots: 1, running: 1, warm: { envs: ["env-1"], repos: [] } });
    expect(detail.json.last_seen).toEqual(expect.any(String));
    expect(detail.json.holding).toEqual([expect.objectContaining({ job_id: job.id, attempt: 1, status: "assigned", project })]);
    expect(detail.json.recent_attempts.map((a: { job_id: string }) => a.job_id)).toEqual([job.id]);

    // A member of the job's project sees the attempt; a user of another project sees the worker only.
    const { token: member } = await userToken({ project, role: "viewer" });
    expect((await api(`/v1/workers/${workerId}`, { token: member })).json.holding).toHaveLength(1);
    const { token: outsider } = await userToken({ project: await newProject(), role: "member" });
    const seen = await api(`/v1/workers/${workerId}`, { token: outsider });
    expect(seen.status).toBe(200);
    expect([seen.json.holding, seen.json.recent_attempts]).toEqual([[], []]);
    expect((await api("/v1/workers/w_nope")).status).toBe(404);
    agent.close();
  });

  it("forgets an offline worker (admin only), never an online one", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool), { name: "forget-1" });
    const refused = await api(`/v1/workers/${workerId}`, { method: "DELETE" });
    expect(refused.status).toBe(409);
    expect(refused.json.error.message).toContain("online");
    expect((await api(`/v1/workers/${workerId}`, { method: "DELETE", token: (await userToken({ role: null })).token })).status).toBe(403);

    agent.close();
    await pollUntil(async () => (await api(`/v1/workers/${workerId}`)).json.status, (s) => s === "offline", { timeoutMs: 10_000, intervalMs: 100, what: "the worker offline" });
    expect((await api(`/v1/workers/${workerId}`, { method: "DELETE" })).status).toBe(204);
    expect((await api(`/v1/workers/${workerId}`)).status).toBe(404);
    expect((await api(`/v1/workers?pool=${pool}`)).json.workers).toEqual([]);
    const audit = await api(`/v1/audit?action=worker.delete`);
    expect(audit.json.events.find((e: { target: string }) => e.target === workerId)).toMatchObject({ action: "worker.delete", actor: "admin" });
  });

  it("fails the queued jobs pinned to a forgotten worker, which no worker will ever be again, and no others", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const { agent, workerId } = await FakeAgent.join(token, { name: "forget-2" });
    agent.close();
    await pollUntil(async () => (await api(`/v1/workers/${workerId}`)).json.status, (s) => s === "offline", { timeoutMs: 10_000, intervalMs: 100, what: "the worker offline" });
    const pinned = (await submit({ pool, worker: workerId })).json;
    const free = (await submit({ pool })).json;
    expect((await api(`/v1/workers/${workerId}`, { method: "DELETE" })).status).toBe(204);
    expect((await api(`/v1/jobs/${pinned.id}`)).json).toMatchObject({ status: "failed", failure_reason: "unschedulable", failure_message: `unschedulable: pinned to worker ${workerId}, which was deleted` });
    expect((await api(`/v1/jobs/${free.id}`)).json.status).toBe("queued");
    // The unpinned one still runs, on the next worker to join.
    const next = await FakeAgent.join(token, { name: "forget-3" });
    expect((await next.agent.next("assign_job")).payload.job_id).toBe(free.id);
    next.agent.close();
  });
});

// vitest.config.mts runs this plane with AGENT_MIN_VERSION 0.0.5 and AGENT_RECOMMENDED_VERSION 0.3.0.
describe("agent versions", () => {
  it("refuses an agent older than the minimum with the close after which it stops, saying what to install", async () => {
    const pool = uniquePool();
    const agent = await FakeAgent.connect(await agentToken(pool));
    agent.send({ type: "hello", payload: { agent_version: "0.0.1", name: "old-1", slots: 1, caps: caps(), running: [] } });
    const error = await agent.next("error");
    expect(error.payload.message).toBe("gridx agent 0.0.1 is older than this control plane's minimum 0.0.5: install 0.3.0 (npm install -g gridx@0.3.0, then restart the service)");
    await pollUntil(async () => agent.closed, (c) => c !== null, { timeoutMs: 5000, intervalMs: 20, what: "the refused socket closed" });
    expect(agent.closed!.code).toBe(4007);
    expect((await api(`/v1/workers?pool=${pool}`)).json.workers).toEqual([]);
  });

  it("runs an agent older than the recommended one, shown outdated and listed by ?outdated=1", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const old = await FakeAgent.join(token, { agent_version: "0.2.9", name: "v-old" });
    const current = await FakeAgent.join(token, { agent_version: "0.3.0", name: "v-new" });
    const all = (await api(`/v1/workers?pool=${pool}`)).json.workers;
    expect(Object.fromEntries(all.map((w: { name: string; outdated: boolean }) => [w.name, w.outdated]))).toEqual({ "v-old": true, "v-new": false });
    expect((await api(`/v1/workers?pool=${pool}&outdated=1`)).json.workers.map((w: { name: string }) => w.name)).toEqual(["v-old"]);
    expect((await api(`/v1/workers/${old.workerId}`)).json).toMatchObject({ agent_version: "0.2.9", outdated: true, status: "online" });
    old.agent.close();
    current.agent.close();
  });
});
