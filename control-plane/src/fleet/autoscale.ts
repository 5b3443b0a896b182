import { cpusMilli } from "../../../protocol/index.ts";
import { canEverFit } from "../workflows/fit.ts";
import { offersSandbox, planDispatch, initialSchedulerState, type QueuedJob, type WorkerView } from "../coordinator/scheduler.ts";

/*
 * Which autoscaling call a pool's hook gets, if any (pure): the queue, the connected workers,
 * how long each has been idle and when each kind was last called in, the calls out. The
 * coordinator's sweep gathers the facts and sends what this decides (autoscale-hook.ts).
 */

export const AUTOSCALE_KINDS = ["scale_up", "scale_down"] as const;
export type AutoscaleKind = (typeof AUTOSCALE_KINDS)[number];

export interface AutoscaleTimings {
  /** A queued job no online worker takes counts once it has waited this long. */
  upAfterMs: number;
  /** A worker holding no attempt for this long is named in a scale-down hint. */
  downAfterMs: number;
  /** Calls of one kind to one pool come at least this far apart. */
  cooldownMs: number;
}

/** A ready queued job (not held by its parents, a retry's backoff or a project quota). */
export interface DemandJob extends QueuedJob {
  /** When it last entered the queue (ms). */
  queuedAt: number;
}

/** What the waiting jobs need that the online workers do not give them. */
export interface Shortfall {
  jobs: number;
  /** Of those, how many no online worker could ever run, busy or not (too big, a label, a runtime). */
  never_fit: number;
  /** Sums over the jobs. */
  cpus: number;
  memory_mb: number;
  gpus: number;
  /** The most one of them needs: the smallest machine that takes any of them. */
  largest: { cpus: number; memory_mb: number; gpus: number };
  /** `key=value` → how many of the jobs ask for that label. */
  labels: Record<string, number>;
  /** When the longest-waiting of them was queued (ms). */
  oldestQueuedAt: number;
}

export type AutoscaleCall = { kind: "scale_up"; shortfall: Shortfall } | { kind: "scale_down"; idle: { id: string; idleSince: number }[] };

/**
 * The queued jobs the online workers leave waiting: those a scheduling round over them, as
 * they are now (busy slots held), would not place, in a slot or prefetched.
 */
export function unplaced(jobs: readonly DemandJob[], workers: readonly WorkerView[]): DemandJob[] {
  const placed = new Set(planDispatch(jobs, workers, "first-idle", initialSchedulerState(), () => 0).assignments.map((a) => a.jobId));
  return jobs.filter((j) => !placed.has(j.id));
}

/** Whether some online worker could run the job once free. */
const couldEverRun = (job: QueuedJob, workers: readonly WorkerView[]) => workers.some((w) => !w.draining && offersSandbox(w, job.sandbox) && canEverFit(w.caps, job.requirements));

export function shortfallOf(jobs: readonly DemandJob[], workers: readonly WorkerView[]): Shortfall {
  const labels: Record<string, number> = {};
  let milli = 0;
  let largestMilli = 0;
  const s: Shortfall = { jobs: jobs.length, never_fit: 0, cpus: 0, memory_mb: 0, gpus: 0, largest: { cpus: 0, memory_mb: 0, gpus: 0 }, labels, oldestQueuedAt: Infinity };
  for (const j of jobs) {
    const r = j.requirements;
    milli += cpusMilli(r.cpus);
    largestMilli = Math.max(largestMilli, cpusMilli(r.cpus));
    s.memory_mb += r.memory_mb;
    s.gpus += r.gpus;
    s.largest.memory_mb = Math.max(s.largest.memory_mb, r.memory_mb);
    s.largest.gpus = Math.max(s.largest.gpus, r.gpus);
    for (const [k, v] of Object.entries(r.labels)) labels[`${k}=${v}`] = (labels[`${k}=${v}`] ?? 0) + 1;
    if (!couldEverRun(j, workers)) s.never_fit++;
    s.oldestQueuedAt = Math.min(s.oldestQueuedAt, j.queuedAt);
  }
  s.cpus = milli / 1000;
  s.largest.cpus = largestMilli / 1000;
  return s;
}

/**
 * Since when each connected worker has held no attempt (running, assigned or prefetched):
 * kept from `previous` while it stays idle, `now` for one that just became idle, and gone
 * for one that is busy or no longer connected.
 */
export function trackIdle(previous: Readonly<Record<string, number>>, workers: readonly WorkerView[], now: number): Record<string, number> {
  const idle: Record<string, number> = {};
  for (const w of workers) if (w.used.slots === 0 && (w.waiting ?? 0) === 0) idle[w.id] = previous[w.id] ?? now;
  return idle;
}

export interface AutoscaleFacts {
  jobs: readonly DemandJob[];
  workers: readonly WorkerView[];
  /** From trackIdle. */
  idle: Readonly<Record<string, number>>;
  /** When each kind was last called for this pool (ms), whatever became of the call. */
  lastCalls: Partial<Record<AutoscaleKind, number>>;
  now: number;
}

/**
 * The calls to make now: `scale_up` when jobs the online workers leave waiting have waited
 * `upAfterMs` (its shortfall counts only those jobs: demand that lasted, not a burst that the
 * pool will drain by itself), and `scale_down` naming the workers idle `downAfterMs`, longest
 * idle first; neither within `cooldownMs` of the last call of its kind.
 *
 * @example
 * autoscaleCalls({ jobs, workers, idle, lastCalls: {}, now }, { upAfterMs: 60_000, downAfterMs: 600_000, cooldownMs: 300_000 })
 */
export function autoscaleCalls(f: AutoscaleFacts, t: AutoscaleTimings): AutoscaleCall[] {
  const calls: AutoscaleCall[] = [];
  const cooled = (kind: AutoscaleKind) => f.lastCalls[kind] === undefined || f.now - f.lastCalls[kind] >= t.cooldownMs;
  if (cooled("scale_up")) {
    const lasted = unplaced(f.jobs, f.workers).filter((j) => f.now - j.queuedAt >= t.upAfterMs);
    if (lasted.length) calls.push({ kind: "scale_up", shortfall: shortfallOf(lasted, f.workers) });
  }
  if (cooled("scale_down")) {
    const idle = Object.entries(f.idle)
      .filter(([, since]) => f.now - since >= t.downAfterMs)
      .map(([id, idleSince]) => ({ id, idleSince }))
      .sort((a, b) => a.idleSince - b.idleSince || (a.id < b.id ? -1 : 1));
    if (idle.length) calls.push({ kind: "scale_down", idle });
  }
  return calls;
}
