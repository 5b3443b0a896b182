import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, isDone, launchOnlineAgent, runGridx, uniqueName, waitForJob } from "./helpers.ts";

/** Prints what the job learns of where it runs: the worker it is pinned to, and its own id. */
const whoAmI = ["python3", "-c", "import os; print('on', os.environ['GRIDX_WORKER_ID'], 'as', os.environ['GRIDX_JOB_ID'])"];

describe("run on all workers: a broadcast to a pool of three real agents", () => {
  const pool = uniqueName("bcast");
  let agents: Awaited<ReturnType<typeof launchOnlineAgent>>[] = [];

  beforeAll(async () => {
    agents = await Promise.all(["n1", "n2", "n3"].map((n) => launchOnlineAgent({ pool, name: uniqueName(n), slots: 1 })));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop("SIGTERM")));
  });

  it("runs one job on each worker, each on its own, and GET /v1/broadcasts/:id shows them all", async () => {
    const created = await api(`/v1/pools/${pool}/broadcast`, { method: "POST", json: { job: { kind: "command", command: { image: "gridx/python:latest", argv: whoAmI } } } });
    expect(created.status).toBe(201);
    const ids = agents.map((a) => a.worker.id).sort();
    expect(created.json.jobs.map((j: { worker: string }) => j.worker).sort()).toEqual(ids);
    for (const { worker, job_id } of created.json.jobs) {
      const done = await waitForJob(job_id, isDone);
      expect(done).toMatchObject({ status: "completed", exit_code: 0, worker_id: worker });
      expect(done.stdout).toBe(`on ${worker} as ${job_id}\n`);
    }
    const view = (await api(`/v1/broadcasts/${created.json.id}`)).json;
    expect(view).toMatchObject({ pool, done: true, counts: { completed: 3, failed: 0 } });
    expect(view.workers.map((w: { worker_name: string }) => w.worker_name).sort()).toEqual(agents.map((a) => a.worker.name).sort());
  });

  it("gridx broadcast waits and prints every worker's line; a failure on one exits 1", async () => {
    const all = await runGridx(["broadcast", "--pool", pool, "--image", "gridx/python:latest", "--", ...whoAmI]);
    expect(all.code).toBe(0);
    for (const a of agents) expect(all.stdout).toMatch(new RegExp(`^${a.worker.name} +${a.worker.id} +j_\\w+ +completed +0$`, "m"));
    expect(all.stdout).toContain("3 workers: 3 completed");

    const one = agents[1]!.worker;
    const failed = await runGridx(["broadcast", "--json", "--pool", pool, "--worker", one.name, "--image", "gridx/python:latest", "--", "python3", "-c", "import sys; sys.exit(3)"]);
    expect(failed.code).toBe(1);
    expect(JSON.parse(failed.stdout)).toMatchObject({ done: true, counts: { failed: 1 }, workers: [{ worker_id: one.id, status: "failed", exit_code: 3 }] });
  });
});
