import { issueAgentToken } from "../scripts/local-grid.ts";
import { benchControlPlane, call, jobCounts, listJobs, submitJobs, until, type BenchPlane } from "./grid.ts";
import { SimAgent } from "./sim-agent.ts";
import { round, type Figure } from "./stats.ts";

export interface FairShareOptions {
  /** Jobs each project floods. */
  jobs: number;
  agents: number;
  slots: number;
  /** Every job's run time (equal for all). */
  runMs: number;
  /** The bound on the whole run. */
  limitMs: number;
}

const SECTION = "7 fairshare";
const POOL = "bench-fairshare";
/** Two projects flooding the same slots, with their fair-share weights. */
const PROJECTS = [
  { name: "bench-fs-heavy", weight: 2 },
  { name: "bench-fs-light", weight: 1 },
];
/** The issue's bound: each project's share within 10 % of its weight's. */
const TOLERANCE = 0.1;

interface Run {
  project: string;
  assignedAt: number;
  finishedAt: number;
}

/**
 * Each project's slot-time between `from` and `to`: the part of each run (assignment to
 * result, when its slot was held) inside the window.
 */
function slotTime(runs: Run[], from: number, to: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of runs) out.set(r.project, (out.get(r.project) ?? 0) + Math.max(0, Math.min(r.finishedAt, to) - Math.max(r.assignedAt, from)));
  return out;
}

/**
 * 7. Fair share: two projects with weights 2 and 1 each queue `jobs` jobs of equal length in
 * one pool before simulated agents join, so they compete for the same slots from the first
 * assignment. Measured over the contested window, from the first assignment until the last of
 * either project's jobs leaves the queue: each project's share of slot-time and of jobs
 * completed, against its weight's share (2/3 and 1/3).
 */
export async function benchFairShare(opts: FairShareOptions): Promise<Figure[]> {
  const cp: BenchPlane = await benchControlPlane();
  const token = await issueAgentToken(cp, "fairshare", POOL);
  const agents = Array.from({ length: opts.agents }, (_, i) => new SimAgent(cp.url, token, `fs-${i}`, opts.slots, { runMs: opts.runMs }));
  try {
    for (const p of PROJECTS) await call(cp, "POST", "/v1/projects", { name: p.name, weight: p.weight });
    await Promise.all(PROJECTS.map((p) => submitJobs(cp, POOL, opts.jobs, 16, { project: p.name })));
    const t0 = performance.now();
    agents.forEach((a) => a.start());
    const total = opts.jobs * PROJECTS.length;
    await until(async () => (await jobCounts(cp, POOL)).completed === total, opts.limitMs, `${total} jobs to complete`, 250);
    const seconds = (performance.now() - t0) / 1000;

    const jobs = (await listJobs(cp, POOL)) as (Awaited<ReturnType<typeof listJobs>>[number] & { project: string; finished_at: string | null })[];
    const runs: Run[] = jobs.map((j) => ({ project: j.project, assignedAt: Date.parse(j.assigned_at!), finishedAt: Date.parse(j.finished_at!) }));
    const from = Math.min(...runs.map((r) => r.assignedAt));
    // A project's queue is empty once its last job is assigned: the contest ends with the first to empty.
    const to = Math.min(...PROJECTS.map((p) => Math.max(...runs.filter((r) => r.project === p.name).map((r) => r.assignedAt))));
    const slots = slotTime(runs, from, to);
    const slotTotal = [...slots.values()].reduce((a, b) => a + b, 0);
    const completed = new Map(PROJECTS.map((p) => [p.name, runs.filter((r) => r.project === p.name && r.finishedAt <= to).length]));
    const completedTotal = [...completed.values()].reduce((a, b) => a + b, 0);
    const weightTotal = PROJECTS.reduce((n, p) => n + p.weight, 0);

    const figures: Figure[] = [
      { section: SECTION, name: `contested window (both projects queued; ${opts.agents}×${opts.slots} slots, ${opts.runMs} ms jobs)`, value: round((to - from) / 1000, 1), unit: "s" },
      { section: SECTION, name: `all ${total} jobs completed`, value: round(seconds, 1), unit: "s" },
    ];
    let worst = 0;
    for (const p of PROJECTS) {
      const target = p.weight / weightTotal;
      const share = (slots.get(p.name) ?? 0) / slotTotal;
      const jobShare = (completed.get(p.name) ?? 0) / completedTotal;
      worst = Math.max(worst, Math.abs(share - target) / target);
      figures.push(
        { section: SECTION, name: `${p.name} (weight ${p.weight}) share of slot-time, contested window`, value: round(share * 100), unit: "%", target: `${round(target * 100)} ± ${round(target * TOLERANCE * 100)}` },
        { section: SECTION, name: `${p.name} (weight ${p.weight}) share of jobs completed, contested window`, value: round(jobShare * 100), unit: "%" },
      );
    }
    figures.push({ section: SECTION, name: "largest deviation of a slot-time share from its weight's share (relative)", value: round(worst * 100), unit: "%", target: `<= ${TOLERANCE * 100}` });
    return figures;
  } finally {
    agents.forEach((a) => a.stop());
    await cp.stop();
  }
}
