import { describe, expect, it } from "vitest";
import { pollUntil } from "../helpers/poll.ts";
import { agentToken, api, FakeAgent, newProject, submit, uniquePool, userToken } from "./helpers.ts";

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
});
