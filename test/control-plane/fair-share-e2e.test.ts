import { describe, expect, it } from "vitest";
import type { CoordinatorToAgent } from "../../protocol/index.ts";
import { pollUntil } from "../helpers/poll.ts";
import { agentToken, api, FakeAgent, newProject, submit, uniquePool, userToken } from "./helpers.ts";

/** Queues `n` jobs of a project in a pool, ten requests at a time. */
async function flood(pool: string, project: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 10) {
    const batch = await Promise.all(Array.from({ length: Math.min(10, n - i) }, () => submit({ pool, project })));
    for (const res of batch) {
      if (res.status !== 201) throw new Error(`submit: ${res.status} ${res.text}`);
      ids.push(res.json.id as string);
    }
  }
  return ids;
}

type Assignment = Extract<CoordinatorToAgent, { type: "assign_job" }>["payload"];

async function nextAssignment(agent: FakeAgent): Promise<Assignment> {
  return (await agent.next("assign_job")).payload;
}

function finish(agent: FakeAgent, a: { job_id: string; attempt: number }) {
  const ref = { job_id: a.job_id, attempt: a.attempt };
  agent.sendBatch({ type: "job_started", payload: ref }, { type: "job_result", payload: { ...ref, exit_code: 0, failure_reason: null, message: null } });
}

const stats = async (pool: string, token?: string) => {
  const res = await api(`/v1/pools/${pool}/stats`, token ? { token } : {});
  expect(res.status).toBe(200);
  return res.json.projects as { project: string; weight: number; share: number; usage_slot_s: number; running: number; queued: number }[];
};

describe("fair share through the coordinator", () => {
  it("interleaves two flooding projects' assignments by weight (3:1), and shows their shares in pool stats", async () => {
    const pool = uniquePool();
    const heavy = await newProject({ weight: 3 });
    const light = await newProject({ weight: 1 });
    // The light project floods first: it is not its jobs' age that decides.
    await flood(pool, light, 60);
    await flood(pool, heavy, 60);
    const { agent } = await FakeAgent.join(await agentToken(pool), { slots: 4 });

    // Every job is run as soon as it comes but the last four, which keep the slots held.
    const order: string[] = [];
    while (order.length < 40) {
      const a = await nextAssignment(agent);
      order.push(a.spec.project);
      if (order.length <= 36) finish(agent, a);
    }
    // Of 40 assignments, weight 3:1 is 30:10; both projects had queued jobs all along (60 each).
    const heavyCount = order.filter((p) => p === heavy).length;
    expect(heavyCount).toBeGreaterThanOrEqual(30 - 5);
    expect(heavyCount).toBeLessThanOrEqual(30 + 5);
    // Interleaved, not in runs: the light project is never kept waiting more than a handful of assignments.
    const gaps = order.map((p, i) => (p === light ? i : -1)).filter((i) => i >= 0);
    expect(Math.max(...gaps.slice(1).map((g, i) => g - gaps[i]!))).toBeLessThanOrEqual(8);

    const shares = await pollUntil(
      () => stats(pool),
      (s) => s.reduce((n, p) => n + p.running, 0) === 4,
      { timeoutMs: 5000, intervalMs: 50, what: "four slots held in pool stats" },
    );
    const h = shares.find((p) => p.project === heavy)!;
    const l = shares.find((p) => p.project === light)!;
    expect(h).toMatchObject({ weight: 3 });
    expect(l).toMatchObject({ weight: 1 });
    expect(h.queued + l.queued).toBe(120 - 40);
    expect(h.usage_slot_s).toBeGreaterThan(0);
    expect(l.usage_slot_s).toBeGreaterThan(0);
    expect(h.share + l.share).toBeCloseTo(1, 6);
    expect(h.share).toBeGreaterThan(l.share);

    // A member of the light project sees its own entry; the heavy one is folded into "other".
    const member = await userToken({ project: light, role: "viewer" });
    const seen = await stats(pool, member.token);
    expect(seen.map((p) => p.project).sort()).toEqual([light, "other"].sort());
    expect(seen.find((p) => p.project === "other")).toMatchObject({ weight: 3, queued: h.queued });
    expect(JSON.stringify(seen)).not.toContain(heavy);
    agent.close();
  });

  it("keeps a project at max_running_jobs=1 to one job at a time, the rest queued naming the quota, while another project fills the slots", async () => {
    const pool = uniquePool();
    const capped = await newProject({ quotas: { max_running_jobs: 1 } });
    const open = await newProject();
    const cappedJobs = await flood(pool, capped, 4);
    await flood(pool, open, 6);
    const { agent } = await FakeAgent.join(await agentToken(pool), { slots: 4 });

    const held = new Map<string, Assignment>();
    const take = async () => {
      const a = await nextAssignment(agent);
      held.set(a.job_id, a);
      expect([...held.values()].filter((x) => x.spec.project === capped).length).toBeLessThanOrEqual(1);
      return a;
    };
    for (let i = 0; i < 4; i++) await take();
    expect([...held.values()].filter((x) => x.spec.project === capped)).toHaveLength(1);
    const first = [...held.values()].find((a) => a.spec.project === capped)!;
    expect(first.job_id).toBe(cappedJobs[0]);

    const waiting = await api(`/v1/jobs/${cappedJobs[1]}`);
    expect(waiting.json).toMatchObject({ status: "queued" });
    expect(waiting.json.pending_reason).toContain("max_running_jobs");

    // The open project's jobs come through the other slots one after another; the capped ones wait.
    let openLeft = 6 - 3;
    while (openLeft > 0) {
      const done = [...held.values()].find((a) => a.spec.project === open)!;
      held.delete(done.job_id);
      finish(agent, done);
      expect((await take()).spec.project).toBe(open);
      openLeft--;
    }
    for (const a of [...held.values()].filter((x) => x.spec.project === open)) {
      held.delete(a.job_id);
      finish(agent, a);
    }
    expect(await agent.receives("assign_job")).toBe(false);
    for (const id of cappedJobs.slice(1)) expect((await api(`/v1/jobs/${id}`)).json).toMatchObject({ status: "queued" });

    // Its one running job ends: the next one starts, and only that one.
    held.delete(first.job_id);
    finish(agent, first);
    expect((await take()).job_id).toBe(cappedJobs[1]);
    expect(await agent.receives("assign_job")).toBe(false);
    agent.close();
  });
});
