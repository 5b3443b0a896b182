import { env, runDurableObjectAlarm } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { HEARTBEAT_FRAME } from "../../protocol/index.ts";
import { agentToken, api, caps, FakeAgent, sleep, submit, uniquePool, waitForJob } from "./helpers.ts";

const runAlarm = (pool: string) => runDurableObjectAlarm(env.COORDINATOR.get(env.COORDINATOR.idFromName(pool)));

/** A one-slot agent that asks for one prefetched job, running the first job it is given; heart-beating unless `silent`. */
async function busyAgent(pool: string, over: { max_retries?: number } = {}, silent = false) {
  const { agent, workerId } = await FakeAgent.join(await agentToken(pool), { slots: 1, caps: caps({ prefetch: 1 }) });
  // WORKER_TIMEOUT_S is 2 in tests.
  if (!silent) beats.push(setInterval(() => agent.closed || agent.sendRaw(HEARTBEAT_FRAME), 300));
  const first = (await submit({ pool, ...over })).json;
  await agent.next("assign_job");
  agent.send({ type: "job_started", payload: { job_id: first.id, attempt: 1 } });
  await waitForJob(first.id, (j) => j.status === "running");
  return { agent, workerId, first };
}

const beats: ReturnType<typeof setInterval>[] = [];
afterEach(() => beats.splice(0).forEach(clearInterval));

describe("coordinator: prefetch", () => {
  it("assigns one job beyond a full worker's slots, as deep as its agent asked, and the next once a result frees one", async () => {
    const pool = uniquePool();
    const { agent, workerId, first } = await busyAgent(pool);
    const second = (await submit({ pool })).json;
    const third = (await submit({ pool })).json;
    expect((await agent.next("assign_job")).payload.job_id).toBe(second.id);
    expect(await agent.receives("assign_job", 400)).toBe(false);
    expect((await api(`/v1/jobs/${second.id}`)).json).toMatchObject({ status: "assigned", worker_id: workerId });
    expect((await api(`/v1/jobs/${third.id}`)).json.status).toBe("queued");
    // The agent starts the prefetched job as its slot frees, before the first one's result is in.
    agent.sendBatch(
      { type: "job_started", payload: { job_id: second.id, attempt: 1 } },
      { type: "job_result", payload: { job_id: first.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } },
    );
    expect((await agent.next("assign_job")).payload.job_id).toBe(third.id);
    await waitForJob(second.id, (j) => j.status === "running");
  });

  it("does not take back a prefetched job for the time it waits for a slot", async () => {
    const pool = uniquePool();
    const { agent, first } = await busyAgent(pool);
    const second = (await submit({ pool })).json;
    await agent.next("assign_job");
    agent.send({ type: "job_accepted", payload: { job_id: second.id, attempt: 1 } });
    // PREPARE_TIMEOUT_S is 6 in tests: the prefetched job waits longer than that.
    await sleep(7000);
    await runAlarm(pool);
    expect(await agent.receives("cancel_job", 300)).toBe(false);
    expect((await api(`/v1/jobs/${second.id}`)).json).toMatchObject({ status: "assigned", attempt: 1 });
    agent.send({ type: "job_result", payload: { job_id: first.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    agent.send({ type: "job_started", payload: { job_id: second.id, attempt: 1 } });
    await waitForJob(second.id, (j) => j.status === "running");
  });

  it("cancels a prefetched job: its agent is told, and its place goes to the next job once the agent confirms", async () => {
    const pool = uniquePool();
    const { agent } = await busyAgent(pool);
    const second = (await submit({ pool })).json;
    await agent.next("assign_job");
    expect((await api(`/v1/jobs/${second.id}/cancel`, { method: "POST" })).json.status).toBe("canceled");
    expect((await agent.next("cancel_job")).payload).toEqual({ job_id: second.id, attempt: 1, reason: "user" });
    const third = (await submit({ pool })).json;
    expect(await agent.receives("assign_job", 400)).toBe(false);
    agent.send({ type: "job_result", payload: { job_id: second.id, attempt: 1, exit_code: null, failure_reason: null, message: "stopped before start (user)" } });
    expect((await agent.next("assign_job")).payload.job_id).toBe(third.id);
  });

  it("requeues a prefetched job with the running one when their worker goes silent", async () => {
    const pool = uniquePool();
    const { agent, first } = await busyAgent(pool, { max_retries: 1 }, true);
    const second = (await submit({ pool, max_retries: 1 })).json;
    await agent.next("assign_job");
    // WORKER_TIMEOUT_S is 2 in tests.
    await sleep(2300);
    await runAlarm(pool);
    for (const id of [first.id, second.id]) expect((await waitForJob(id, (j) => j.status === "queued")).failure_message).toMatch(/lost/);
  });
});
