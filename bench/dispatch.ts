import { issueAgentToken } from "../scripts/local-grid.ts";
import { call, jobCounts, listJobs, processTreeUsage, sleep, submitJobs } from "./grid.ts";
import type { BenchPlane } from "./grid.ts";
import { SimAgent } from "./sim-agent.ts";
import { median, p99, round, type Figure } from "./stats.ts";

/** Submit-to-assign of every job in a pool, from the jobs' own timestamps. */
async function assignLatencies(cp: BenchPlane, pool: string): Promise<number[]> {
  return (await listJobs(cp, pool)).filter((j) => j.assigned_at).map((j) => Date.parse(j.assigned_at!) - Date.parse(j.created_at));
}

/**
 * Queued jobs through the whole lifecycle on simulated agents: the clock runs from the first
 * hello to the last result. The API's submit path (`submit`, one POST per job unless given) is
 * timed apart, before the agents join.
 */
export async function lifecycle(
  cp: BenchPlane,
  pool: string,
  opts: { agents: number; slots: number; jobs: number; limitMs: number; batchFrames: boolean },
  submit: () => Promise<void> = () => submitJobs(cp, pool, opts.jobs, 32),
) {
  const token = await issueAgentToken(cp, `sim-${pool}`, pool);
  const agents = Array.from({ length: opts.agents }, (_, i) => new SimAgent(cp.url, token, `sim-${i}`, opts.slots, { batchFrames: opts.batchFrames }));
  try {
    const s0 = performance.now();
    await submit();
    const submitSeconds = (performance.now() - s0) / 1000;
    const t0 = performance.now();
    const cpu0 = (await processTreeUsage(cp.process.pid!)).cpuSeconds;
    await Promise.all(agents.map((a) => new Promise<void>((resolve) => ((a.onReady = resolve), a.start()))));
    let done = 0;
    while (done < opts.jobs && performance.now() - t0 < opts.limitMs) {
      await sleep(250);
      done = (await jobCounts(cp, pool)).completed ?? 0;
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpuPerJob = (((await processTreeUsage(cp.process.pid!)).cpuSeconds - cpu0) * 1000) / Math.max(done, 1);
    return { done, submitRate: opts.jobs / submitSeconds, throughput: done / seconds, cpuPerJob, assign: await assignLatencies(cp, pool) };
  } finally {
    agents.forEach((a) => a.stop());
  }
}

/**
 * 2. Dispatch throughput: simulated agents (no Docker) take a burst of no-op jobs through the
 * whole lifecycle, once with batched frames (as the agent speaks) and once with one message
 * per frame; then, with capacity free, a paced stream measures submit-to-assign.
 */
export async function benchDispatch(cp: BenchPlane, opts: { agents: number; slots: number; jobs: number; pacedJobs: number; limitMs: number }): Promise<Figure[]> {
  const batched = await lifecycle(cp, "bench-dispatch", { ...opts, batchFrames: true });
  const single = await lifecycle(cp, "bench-dispatch-single", { ...opts, batchFrames: false });

  const pacedPool = "bench-paced";
  const pacedToken = await issueAgentToken(cp, "sim-paced", pacedPool);
  const paced = Array.from({ length: 10 }, (_, i) => new SimAgent(cp.url, pacedToken, `paced-${i}`, opts.slots));
  try {
    await Promise.all(paced.map((a) => new Promise<void>((resolve) => ((a.onReady = resolve), a.start()))));
    for (let i = 0; i < opts.pacedJobs; i++) {
      await call(cp, "POST", "/v1/jobs", { kind: "python", pool: pacedPool, python: { script: "pass" } });
      await sleep(40);
    }
    await sleep(2000);
  } finally {
    paced.forEach((a) => a.stop());
  }
  const free = await assignLatencies(cp, pacedPool);
  return [
    { section: "2 dispatch", name: `jobs completed of ${opts.jobs}`, value: batched.done, unit: "jobs" },
    { section: "2 dispatch", name: "submit rate (32 clients, one job per POST)", value: round(batched.submitRate), unit: "jobs/s" },
    { section: "2 dispatch", name: "lifecycle throughput (assign→start→result, queued jobs)", value: round(batched.throughput), unit: "jobs/s", target: ">= 500" },
    { section: "2 dispatch", name: "control plane CPU per job in the lifecycle (wrangler + workerd + local D1)", value: round(batched.cpuPerJob, 2), unit: "ms" },
    { section: "2 dispatch", name: "lifecycle throughput, one message per frame (no batching)", value: round(single.throughput), unit: "jobs/s" },
    { section: "2 dispatch", name: "control plane CPU per job, one message per frame", value: round(single.cpuPerJob, 2), unit: "ms" },
    { section: "2 dispatch", name: "submit→assign p50 (burst, queued before agents)", value: round(median(batched.assign)), unit: "ms" },
    { section: "2 dispatch", name: "submit→assign p50 (capacity free)", value: round(median(free)), unit: "ms" },
    { section: "2 dispatch", name: "submit→assign p99 (capacity free)", value: round(p99(free)), unit: "ms", target: "<= 100" },
  ];
}
