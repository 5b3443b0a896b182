import type { Quotas } from "../db/schema.ts";
import { startHold, type QuotaHit } from "../quotas.ts";

/** A queued job as fair share sees it. */
export interface FairJob {
  id: string;
  project: string;
  gpus: number;
}

/** What fair share knows of a project with queued jobs. */
export interface ProjectStanding {
  /** Decayed slot-seconds the project used in this pool (see PoolUsage). */
  usage: number;
  /** Slots its attempts hold in this pool now. */
  held: number;
  /** Its share of contested capacity relative to other projects' (default 1). */
  weight: number;
  /** Only for a project with a running-jobs or GPU quota: the quotas, and what it holds now in every pool. */
  quota?: { quotas: Quotas; running_jobs: number; gpus: number };
}

/** Jobs of one project that a quota kept out of a round, with the quota that did. */
export interface QuotaHeld {
  hit: QuotaHit;
  jobs: number;
}

/**
 * The order in which a round offers queued jobs to planDispatch: each next job comes from the
 * project with the least (usage + charges) / weight, and within a project in the order given
 * (priority, then FIFO). A run is expected to cost `chargeS` slot-seconds: each slot a project
 * holds now and each job this round gives it is charged that, so one round does not hand every
 * free slot to the project that was poorest when it began, nor the next round the slot to the
 * project whose new runs have not yet accrued (HTCondor likewise counts claimed slots against
 * a submitter's share in each negotiation cycle). Ties go to the project whose next job is the
 * oldest. A job its project's quota holds is left out and counted in `held`, and a job
 * taken counts against the quota for the jobs after it (so a job offered but placed nowhere
 * still holds its quota for the round: the quota is never overrun). Pure.
 */
export function fairOrder<J extends FairJob>(jobs: readonly J[], projects: ReadonlyMap<string, ProjectStanding>, chargeS: number): { order: J[]; held: Map<string, QuotaHeld> } {
  const queues = new Map<string, { jobs: J[]; next: number; cost: number; weight: number; running: number; gpus: number }>();
  for (const job of jobs) {
    let q = queues.get(job.project);
    if (!q) {
      const standing = projects.get(job.project);
      const weight = standing && standing.weight > 0 ? standing.weight : 1;
      q = { jobs: [], next: 0, cost: (standing?.usage ?? 0) + (standing?.held ?? 0) * chargeS, weight, running: standing?.quota?.running_jobs ?? 0, gpus: standing?.quota?.gpus ?? 0 };
      queues.set(job.project, q);
    }
    q.jobs.push(job);
  }
  const order: J[] = [];
  const held = new Map<string, QuotaHeld>();
  const hold = (project: string, hit: QuotaHit, count: number) => {
    const h = held.get(project);
    if (h) h.jobs += count;
    else held.set(project, { hit, jobs: count });
  };
  for (;;) {
    let pick: string | null = null;
    for (const [project, q] of queues) {
      if (q.next >= q.jobs.length) continue;
      const best = pick === null ? null : queues.get(pick)!;
      const share = q.cost / q.weight;
      const bestShare = best ? best.cost / best.weight : Infinity;
      if (share < bestShare || (share === bestShare && best && q.jobs[q.next]!.id < best.jobs[best.next]!.id)) pick = project;
    }
    if (pick === null) break;
    const q = queues.get(pick)!;
    const job = q.jobs[q.next++]!;
    const quotas = projects.get(pick)?.quota?.quotas;
    const hit = quotas ? startHold(quotas, { running_jobs: q.running, gpus: q.gpus }, job.gpus) : null;
    if (hit) {
      // A running-jobs quota holds every job behind this one too; a GPU quota may let a smaller one by.
      const rest = hit.quota === "max_running_jobs" ? q.jobs.length - q.next : 0;
      q.next += rest;
      hold(pick, hit, 1 + rest);
      continue;
    }
    order.push(job);
    q.cost += chargeS;
    q.running += 1;
    q.gpus += job.gpus;
  }
  return { order, held };
}

/** Usage after `dtMs` more of decay: it halves every `halfLifeMs`. */
export function decay(usage: number, dtMs: number, halfLifeMs: number): number {
  return usage * 2 ** (-dtMs / halfLifeMs);
}

/**
 * Usage after `dtMs` with `slots` held throughout: the old usage decayed, plus the slot-seconds
 * accrued meanwhile, each decayed from when it accrued. For dt much shorter than the half-life
 * this is usage·2^(−dt/H) + slots·dt.
 */
export function accrue(usage: number, slots: number, dtMs: number, halfLifeMs: number): number {
  if (dtMs <= 0) return usage;
  const accrued = slots === 0 ? 0 : ((slots * halfLifeMs) / Math.LN2 / 1000) * (1 - 2 ** (-dtMs / halfLifeMs));
  return decay(usage, dtMs, halfLifeMs) + accrued;
}

/** Usage this small with nothing held is forgotten, so a pool's map does not grow with every project it ever ran. */
const FORGET_BELOW_SLOT_S = 0.01;

/** Weight of the newest finished attempt in the run-length estimate. */
const RUN_ESTIMATE_ALPHA = 0.2;

/** The run length assumed before any attempt finished. */
export const DEFAULT_RUN_S = 60;

/** What a pool's usage record keeps between restarts of its coordinator. */
export interface SavedUsage {
  at: number;
  usage: Record<string, number>;
  runS: number;
}

/**
 * A pool's decayed usage per project (slot-seconds, HTCondor style) and its estimate of a
 * run's length. The coordinator advances it to `now` with the slots each project held since
 * the last advance, whenever those change. No I/O: the coordinator stores `saved()`.
 */
export class PoolUsage {
  private at: number;
  private readonly usage: Map<string, number>;
  private runS: number;

  constructor(
    private readonly halfLifeMs: number,
    saved: SavedUsage | undefined,
    now: number,
  ) {
    this.at = saved?.at ?? now;
    this.usage = new Map(Object.entries(saved?.usage ?? {}));
    this.runS = saved?.runS ?? DEFAULT_RUN_S;
  }

  /** Accrues what `held` (slots by project) used since the last advance, and decays the rest. */
  advance(now: number, held: ReadonlyMap<string, number>): void {
    const dt = now - this.at;
    if (dt <= 0) return;
    this.at = now;
    for (const project of new Set([...this.usage.keys(), ...held.keys()])) {
      const slots = held.get(project) ?? 0;
      const next = accrue(this.usage.get(project) ?? 0, slots, dt, this.halfLifeMs);
      if (slots === 0 && next < FORGET_BELOW_SLOT_S) this.usage.delete(project);
      else this.usage.set(project, next);
    }
  }

  /** An attempt gave its slot back after `slotMs`: the run-length estimate moves toward it (EWMA). */
  finished(slotMs: number): void {
    this.runS += RUN_ESTIMATE_ALPHA * (slotMs / 1000 - this.runS);
  }

  /** What one more job is expected to cost its project, in slot-seconds. */
  get chargeS(): number {
    return this.runS;
  }

  of(project: string): number {
    return this.usage.get(project) ?? 0;
  }

  entries(): [string, number][] {
    return [...this.usage];
  }

  saved(): SavedUsage {
    return { at: this.at, usage: Object.fromEntries(this.usage), runS: this.runS };
  }
}
