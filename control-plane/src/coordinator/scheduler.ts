import { cpusMilli as toMilli, type JobNetwork, type JobRequirements, type Runtime, type WorkerCaps } from "../../../protocol/index.ts";

export const POLICIES = ["first-idle", "least-loaded", "round-robin", "weighted", "random"] as const;
export type Policy = (typeof POLICIES)[number];

/** A connected worker as the scheduler sees it: what it has, and what its jobs hold. */
export interface WorkerView {
  id: string;
  caps: Pick<WorkerCaps, "cpu_cores" | "memory_mb" | "gpus" | "labels" | "runtimes" | "egress" | "prefetch"> & Partial<Pick<WorkerCaps, "ports">>;
  slots: number;
  draining: boolean;
  /** What its attempts that hold slots (running, or able to start now) hold. */
  used: { slots: number; cpusMilli: number; memoryMb: number; gpuIndices: readonly number[] };
  /** Attempts assigned here that wait on the agent for a slot (prefetched); see ledger.ts. */
  waiting?: number;
  /** Keys of the environments and repositories the worker has cached (protocol `envKey`, `repoKey`). */
  warm: { envs: readonly string[]; repos: readonly string[] };
}

export interface QueuedJob {
  id: string;
  requirements: JobRequirements;
  /** The sandbox the job runs in: only a worker with that runtime (and the filtered network, for egress; the port relay, for ports) takes it. */
  sandbox: { runtime: Runtime; network: JobNetwork; ports?: boolean };
  /** A repo job's environment and code repository keys: workers with them warm are preferred. */
  affinity?: { env: string; repo: string };
  /** The one worker the job may run on (its `worker` field); any worker when absent. */
  worker?: string | null;
}

export interface Assignment {
  jobId: string;
  workerId: string;
  gpuIndices: number[];
  cpusMilli: number;
  memoryMb: number;
}

/** Policy memory carried from one round to the next (round-robin position, weighted credits). */
export interface SchedulerState {
  lastWorkerId: string | null;
  credits: Record<string, number>;
}

export const initialSchedulerState = (): SchedulerState => ({ lastWorkerId: null, credits: {} });

function freeGpuIndices(w: WorkerView): number[] {
  const used = new Set(w.used.gpuIndices);
  return w.caps.gpus.map((g) => g.index).filter((i) => !used.has(i));
}

/** Whether a worker can ever run a job's sandbox: its runtime, and egress through the agent's filtered network. */
export function offersSandbox(w: { caps: Pick<WorkerCaps, "runtimes" | "egress"> & Partial<Pick<WorkerCaps, "ports">> }, sandbox: QueuedJob["sandbox"]): boolean {
  return w.caps.runtimes.includes(sandbox.runtime) && (sandbox.network === "none" || w.caps.egress) && (!sandbox.ports || w.caps.ports === true);
}

/** Whether a worker can take a job now: capabilities, labels and a free slot. */
export function fits(w: WorkerView, req: JobRequirements, sandbox: QueuedJob["sandbox"] = { runtime: "runc", network: "none" }): boolean {
  if (w.draining || w.used.slots >= w.slots) return false;
  if (!offersSandbox(w, sandbox)) return false;
  if (w.used.cpusMilli + toMilli(req.cpus) > toMilli(w.caps.cpu_cores)) return false;
  if (w.used.memoryMb + req.memory_mb > w.caps.memory_mb) return false;
  if (freeGpuIndices(w).length < req.gpus) return false;
  return Object.entries(req.labels).every(([k, v]) => w.caps.labels[k] === v);
}

/**
 * Whether a job may be prefetched onto a worker whose slots are full: the agent holds it,
 * prepared, and starts it the moment a slot frees. Only within the depth the agent asked for
 * (`caps.prefetch`), and never a GPU job, whose devices are picked when it is placed.
 */
export function prefetches(w: WorkerView, req: JobRequirements, sandbox: QueuedJob["sandbox"]): boolean {
  if (w.draining || prefetchRoom(w) <= 0 || req.gpus > 0) return false;
  if (!offersSandbox(w, sandbox)) return false;
  if (toMilli(req.cpus) > toMilli(w.caps.cpu_cores) || req.memory_mb > w.caps.memory_mb) return false;
  return Object.entries(req.labels).every(([k, v]) => w.caps.labels[k] === v);
}

/**
 * How many more attempts may wait on a worker. Its agent takes at most slots + prefetch, and
 * counts a job until its result is sent, so a start reported before the result of the job
 * whose slot it took (the agent frees a slot when the container exits) eats into the depth.
 */
export function prefetchRoom(w: WorkerView): number {
  const prefetch = w.caps.prefetch ?? 0;
  return Math.min(prefetch - (w.waiting ?? 0), w.slots + prefetch - w.used.slots - (w.waiting ?? 0));
}

/** Whether a worker could take another job this round, in a slot or waiting for one. */
const hasRoom = (w: WorkerView) => !w.draining && (w.used.slots < w.slots || prefetchRoom(w) > 0);

/** A worker's share under the weighted policy: its `weight` label, else its CPU cores. */
function weightOf(w: WorkerView): number {
  const label = Number(w.caps.labels["weight"]);
  return Number.isFinite(label) && label > 0 ? label : w.caps.cpu_cores;
}

/**
 * Among fitting workers, those that already have the job's environment image, else those
 * with its code repository, else all: a warm worker skips a build or a clone.
 */
export function preferWarm<W extends WorkerView>(fitting: W[], affinity: QueuedJob["affinity"]): W[] {
  if (!affinity) return fitting;
  const withEnv = fitting.filter((w) => w.warm.envs.includes(affinity.env));
  if (withEnv.length) return withEnv;
  const withRepo = fitting.filter((w) => w.warm.repos.includes(affinity.repo));
  return withRepo.length ? withRepo : fitting;
}

function choose<W extends WorkerView>(policy: Policy, fitting: W[], all: readonly WorkerView[], state: SchedulerState, random: () => number): W {
  const first = fitting[0]!;
  switch (policy) {
    case "first-idle":
      return fitting.find((w) => w.used.slots === 0) ?? first;
    case "least-loaded":
      return fitting.reduce((best, w) => (w.used.slots / w.slots < best.used.slots / best.slots ? w : best));
    case "round-robin": {
      const last = state.lastWorkerId;
      return (last !== null && fitting.find((w) => w.id > last)) || first;
    }
    case "weighted": {
      // Smooth weighted round-robin (as nginx does it): every fitting worker earns its weight,
      // the richest is picked and pays back the total, so shares follow weights without bursts.
      const total = fitting.reduce((sum, w) => sum + weightOf(w), 0);
      for (const w of fitting) state.credits[w.id] = (state.credits[w.id] ?? 0) + weightOf(w);
      const pick = fitting.reduce((best, w) => ((state.credits[w.id] ?? 0) > (state.credits[best.id] ?? 0) ? w : best));
      state.credits[pick.id] = (state.credits[pick.id] ?? 0) - total;
      for (const id of Object.keys(state.credits)) if (!all.some((w) => w.id === id)) delete state.credits[id];
      return pick;
    }
    case "random":
      return fitting[Math.floor(random() * fitting.length)] ?? first;
  }
}

/**
 * Plans one scheduling round: takes queued jobs in the order given (priority, then FIFO),
 * places each on a fitting worker chosen by the pool's policy, and skips jobs that fit
 * nowhere now so they do not block smaller jobs behind them. A job no free slot takes is
 * prefetched, if a full worker has room for it in its depth (the least-waiting one first), so
 * fair share's order decides the read-ahead as it decides the slots. Pure: the returned
 * state and assignments are all it does.
 */
export function planDispatch(
  jobs: readonly QueuedJob[],
  workers: readonly WorkerView[],
  policy: Policy,
  state: SchedulerState,
  random: () => number = Math.random,
): { assignments: Assignment[]; state: SchedulerState } {
  const next: SchedulerState = { lastWorkerId: state.lastWorkerId, credits: { ...state.credits } };
  const pool = [...workers]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((w) => ({ ...w, waiting: w.waiting ?? 0, used: { ...w.used, gpuIndices: [...w.used.gpuIndices] }, warm: { envs: [...w.warm.envs], repos: [...w.warm.repos] } }));
  const assignments: Assignment[] = [];
  for (const job of jobs) {
    if (!pool.some(hasRoom)) break;
    // A pinned job waits for its own worker, however free the others are.
    const eligible = job.worker ? pool.filter((w) => w.id === job.worker) : pool;
    const fitting = preferWarm(
      eligible.filter((w) => fits(w, job.requirements, job.sandbox)),
      job.affinity,
    );
    // No free slot takes it: the least-waiting full worker with room in its depth holds it.
    const waitable = fitting.length ? [] : eligible.filter((w) => prefetches(w, job.requirements, job.sandbox));
    const least = Math.min(...waitable.map((w) => w.waiting));
    const candidates = fitting.length ? fitting : preferWarm(waitable.filter((w) => w.waiting === least), job.affinity);
    if (candidates.length === 0) continue;
    const worker = choose(policy, candidates, pool, next, random);
    // The worker builds the environment for this job, so the next job of the same one follows it.
    if (job.affinity) {
      worker.warm.envs.push(job.affinity.env);
      worker.warm.repos.push(job.affinity.repo);
    }
    const cpusMilli = toMilli(job.requirements.cpus);
    next.lastWorkerId = worker.id;
    if (!fitting.length) {
      worker.waiting += 1;
      assignments.push({ jobId: job.id, workerId: worker.id, gpuIndices: [], cpusMilli, memoryMb: job.requirements.memory_mb });
      continue;
    }
    const gpuIndices = freeGpuIndices(worker).slice(0, job.requirements.gpus);
    worker.used.slots += 1;
    worker.used.cpusMilli += cpusMilli;
    worker.used.memoryMb += job.requirements.memory_mb;
    worker.used.gpuIndices = [...worker.used.gpuIndices, ...gpuIndices];
    assignments.push({ jobId: job.id, workerId: worker.id, gpuIndices, cpusMilli, memoryMb: job.requirements.memory_mb });
  }
  return { assignments, state: next };
}
