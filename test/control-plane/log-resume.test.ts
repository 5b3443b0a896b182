import { describe, expect, it } from "vitest";
import { agentToken, FakeAgent, submit, uniquePool, waitForJob } from "./helpers.ts";

/*
 * After a reconnect the coordinator tells the agent, per attempt it still holds, the last log
 * batch stored, so the agent re-sends what the dropped socket lost (issue 18).
 */

async function started(pool: string, agent: FakeAgent) {
  const job = (await submit({ pool })).json;
  await agent.next("assign_job");
  agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
  await waitForJob(job.id, (j) => j.status === "running");
  return job;
}

const line = (text: string) => ({ stream: "stdout" as const, text, ts: 1 });

describe("coordinator: log_resume after a reconnect", () => {
  it("tells a reconnected agent the last stored batch of each attempt it reported and holds, -1 for none", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const { agent } = await FakeAgent.join(token, { slots: 2 });
    const logged = await started(pool, agent);
    const silent = await started(pool, agent);
    agent.send({ type: "job_log", payload: { job_id: logged.id, attempt: 1, seq: 0, lines: [line("a")] } });
    agent.send({ type: "job_log", payload: { job_id: logged.id, attempt: 1, seq: 1, lines: [line("b")] } });
    await waitForJob(logged.id, (j) => j.stdout === "a\nb\n");
    // The first connection heard of none: nothing to resume.
    expect(await agent.receives("log_resume")).toBe(false);
    agent.close();

    const running = [logged, silent].map((j) => ({ job_id: j.id as string, attempt: 1 }));
    const { agent: again } = await FakeAgent.join(token, { slots: 2, running });
    const resumes = [await again.next("log_resume"), await again.next("log_resume")].map((m) => m.payload);
    expect(resumes.sort((a, b) => a.after_seq - b.after_seq)).toEqual([
      { job_id: silent.id, attempt: 1, after_seq: -1 },
      { job_id: logged.id, attempt: 1, after_seq: 1 },
    ]);
    again.close();
  });

  it("sends none for an attempt the agent no longer holds (it is canceled as stale)", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const { agent } = await FakeAgent.join(token);
    agent.close();
    const { agent: again } = await FakeAgent.join(token, { running: [{ job_id: "j_not_mine", attempt: 1 }] });
    expect((await again.next("cancel_job")).payload).toMatchObject({ job_id: "j_not_mine", reason: "stale" });
    expect(await again.receives("log_resume")).toBe(false);
    again.close();
  });
});
