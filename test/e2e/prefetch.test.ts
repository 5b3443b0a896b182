import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { api, isDone, launchOnlineAgent, removeContainersOfAgent, submit, uniqueName, waitForJob } from "./helpers.ts";

const python = (script: string, pool: string, extra: Record<string, unknown> = {}) => ({ kind: "python", pool, python: { script }, ...extra });
/** Runs until canceled: the test decides when it ends, not a clock. */
const forever = (pool: string, extra: Record<string, unknown> = {}) => python("import time\nwhile True: time.sleep(1)", pool, extra);
const attemptsOf = async (id: string) => (await api(`/v1/jobs/${id}/attempts`)).json.attempts as { status: string; assigned_at: string; started_at: string | null; finished_at: string | null }[];
const cancel = (id: string) => api(`/v1/jobs/${id}/cancel`, { method: "POST" });

describe("prefetch on a real agent (1 slot, --prefetch 1)", () => {
  const pool = uniqueName("prefetch");
  const name = uniqueName("pf");
  let agent: AgentProcess;

  beforeAll(async () => {
    agent = await launchOnlineAgent({ pool, name, slots: 1, extraArgs: ["--prefetch", "1"] });
  });
  afterAll(async () => {
    await agent?.stop("SIGTERM");
  });

  it("assigns the second of two jobs while the first runs, and starts it only after the first ends", async () => {
    const first = await submit(forever(pool));
    const second = await submit(python("print('second')", pool));
    await waitForJob(first.id, (j) => j.status === "running");
    await waitForJob(second.id, (j) => j.status === "assigned");
    expect((await api(`/v1/jobs/${first.id}`)).json.status).toBe("running");
    await cancel(first.id);
    const done = await waitForJob(second.id, isDone);
    expect(done).toMatchObject({ status: "completed", stdout: "second\n" });
    const canceledAt = Date.parse((await api(`/v1/jobs/${first.id}`)).json.finished_at);
    const [a2] = await attemptsOf(second.id);
    // Taken while the first held the slot; started only once the first was stopped.
    expect(Date.parse(a2!.assigned_at)).toBeLessThan(canceledAt);
    expect(Date.parse(a2!.started_at!)).toBeGreaterThanOrEqual(canceledAt);
  });

  it("cancels a prefetched job without touching the running one, and prefetches the next in its place", async () => {
    const first = await submit(forever(pool));
    await waitForJob(first.id, (j) => j.status === "running");
    const second = await submit(python("print('never')", pool));
    await waitForJob(second.id, (j) => j.status === "assigned");
    expect((await cancel(second.id)).json.status).toBe("canceled");
    const third = await submit(python("print('third')", pool));
    // The agent confirmed the cancel (the waiting attempt ended), so the third takes its place.
    await waitForJob(third.id, (j) => j.status === "assigned");
    const [a2] = await attemptsOf(second.id);
    expect(a2).toMatchObject({ status: "finished", started_at: null });
    expect((await api(`/v1/jobs/${first.id}`)).json.status).toBe("running");
    await cancel(first.id);
    expect(await waitForJob(third.id, isDone)).toMatchObject({ status: "completed", stdout: "third\n" });
  });
});

describe("prefetch when the agent is killed", () => {
  it("requeues the prefetched job with the running one", async () => {
    const pool = uniqueName("prefetch-kill");
    const name = uniqueName("pfk");
    const gone = await launchOnlineAgent({ pool, name, slots: 1, extraArgs: ["--prefetch", "1", "--lease-s", "2"] });
    try {
      const first = await submit(forever(pool, { max_retries: 1 }));
      await waitForJob(first.id, (j) => j.status === "running");
      const second = await submit(python("print('second')", pool, { max_retries: 1 }));
      await waitForJob(second.id, (j) => j.status === "assigned");
      await gone.stop("SIGKILL");
      for (const id of [first.id, second.id]) {
        const requeued = await waitForJob(id, (j) => j.status === "queued", 90_000);
        expect(requeued.failure_message).toMatch(/lost/);
      }
      await cancel(first.id);
      await cancel(second.id);
    } finally {
      await removeContainersOfAgent(name);
    }
  });
});
