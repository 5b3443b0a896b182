import { call, type BenchPlane } from "./grid.ts";
import { lifecycle } from "./dispatch.ts";
import { round, type Figure } from "./stats.ts";

const SECTION = "12 workflows";

/** One POST of an array; its time and the D1 statements the control plane reports it took. */
async function submitArray(cp: BenchPlane, pool: string, count: number): Promise<{ seconds: number; statements: number }> {
  const t0 = performance.now();
  const res = await fetch(new URL("/v1/jobs", cp.url), {
    method: "POST",
    headers: { authorization: `Bearer ${cp.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ kind: "python", pool, python: { script: "pass" }, array: { count } }),
  });
  if (res.status !== 201) throw new Error(`array submit: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  return { seconds: (performance.now() - t0) / 1000, statements: Number(res.headers.get("gridx-d1-statements")) };
}

/**
 * 12. Workflows: one submit of a 10,000-task array (time, D1 statements), a 1,000-job batch,
 * and the lifecycle throughput of array tasks against as many single jobs on the same
 * simulated agents, in the same run.
 */
export async function benchWorkflows(cp: BenchPlane, opts: { arrayTasks: number; batchJobs: number; jobs: number; agents: number; slots: number; limitMs: number }): Promise<Figure[]> {
  const big = await submitArray(cp, "bench-array-submit", opts.arrayTasks);
  const small = await submitArray(cp, "bench-array-submit-small", 10);

  const t0 = performance.now();
  const batch = await call<{ submitted: number }>(cp, "POST", "/v1/jobs/batch", { jobs: Array.from({ length: opts.batchJobs }, () => ({ kind: "python", pool: "bench-batch", python: { script: "pass" } })) });
  const batchSeconds = (performance.now() - t0) / 1000;

  const lifecycleOpts = { agents: opts.agents, slots: opts.slots, jobs: opts.jobs, limitMs: opts.limitMs, batchFrames: true };
  const single = await lifecycle(cp, "bench-wf-single", lifecycleOpts);
  const tasks = await lifecycle(cp, "bench-wf-array", lifecycleOpts, async () => void (await submitArray(cp, "bench-wf-array", opts.jobs)));
  return [
    { section: SECTION, name: `submit of a ${opts.arrayTasks}-task array (one POST)`, value: round(big.seconds, 2), unit: "s" },
    { section: SECTION, name: `D1 statements of that submit (a 10-task array: ${small.statements})`, value: big.statements, unit: "statements" },
    { section: SECTION, name: `batch submit of ${opts.batchJobs} jobs (one POST, ${batch.submitted} submitted)`, value: round(batchSeconds, 2), unit: "s" },
    { section: SECTION, name: `lifecycle throughput, ${opts.jobs} single jobs`, value: round(single.throughput), unit: "jobs/s" },
    { section: SECTION, name: `lifecycle throughput, one ${opts.jobs}-task array`, value: round(tasks.throughput), unit: "jobs/s" },
    { section: SECTION, name: `single jobs completed of ${opts.jobs}`, value: single.done, unit: "jobs" },
    { section: SECTION, name: `array tasks completed of ${opts.jobs}`, value: tasks.done, unit: "jobs" },
  ];
}
