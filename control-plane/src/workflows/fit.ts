import { cpusMilli, type JobRequirements, type WorkerCaps } from "../../../protocol/index.ts";

/*
 * Whether a queued job could ever run on the workers that are online, whatever they are busy
 * with, and if not, the sentence that says why (pure). The same sentence is a queued job's
 * `pending_reason`, what `gridx status` and the dashboard show, and the message of a job that
 * waited out its queue_ttl_s.
 */

type Caps = Pick<WorkerCaps, "cpu_cores" | "memory_mb" | "gpus" | "labels">;

/** Memory as people write it: MiB below a GiB, else GiB to one decimal. */
export function formatMemory(mb: number): string {
  return mb < 1024 ? `${mb} MiB` : `${Math.round((mb / 1024) * 10) / 10} GiB`;
}

const labelsMatch = (caps: Caps, labels: Record<string, string>) => Object.entries(labels).every(([k, v]) => caps.labels[k] === v);

export function canEverFit(caps: Caps, req: JobRequirements): boolean {
  return cpusMilli(req.cpus) <= cpusMilli(caps.cpu_cores) && req.memory_mb <= caps.memory_mb && req.gpus <= caps.gpus.length && labelsMatch(caps, req.labels);
}

/** Null when some online worker could run the job once it is free; else why none ever can. */
export function neverFitsReason(req: JobRequirements, online: readonly { caps: Caps }[], pool: string): string | null {
  if (online.length === 0) return `no worker of pool ${pool} is online`;
  if (online.some((w) => canEverFit(w.caps, req))) return null;
  const most = (f: (c: Caps) => number) => Math.max(...online.map((w) => f(w.caps)));
  const short: string[] = [];
  if (req.memory_mb > most((c) => c.memory_mb)) short.push(`${formatMemory(req.memory_mb)} memory, the largest online worker has ${formatMemory(most((c) => c.memory_mb))}`);
  if (cpusMilli(req.cpus) > cpusMilli(most((c) => c.cpu_cores))) short.push(`${req.cpus} CPUs, the largest online worker has ${most((c) => c.cpu_cores)}`);
  if (req.gpus > most((c) => c.gpus.length)) short.push(`${req.gpus} GPUs, the most any online worker has is ${most((c) => c.gpus.length)}`);
  const missing = Object.entries(req.labels).filter(([k, v]) => !online.some((w) => w.caps.labels[k] === v));
  if (missing.length) short.push(`label${missing.length > 1 ? "s" : ""} ${missing.map(([k, v]) => `${k}=${v}`).join(", ")}, which no online worker has`);
  if (short.length) return `no online worker can ever fit it: needs ${short.join("; and ")}`;
  return `no online worker can ever fit it: some have its ${req.cpus} CPUs, ${formatMemory(req.memory_mb)} memory${req.gpus ? `, ${req.gpus} GPUs` : ""}${Object.keys(req.labels).length ? " and labels" : ""}, but none has all of them`;
}

/** A pool's worker as a pinned job's wait sees it; undefined when the pool has no such worker. */
export interface PinnedWorker {
  id: string;
  name?: string;
  online: boolean;
  draining: boolean;
  caps: Caps;
}

/**
 * Why a job pinned to one worker waits: that worker gone, offline, draining, too small for it
 * ever, or else busy. `sandbox` is what the worker lacks of the job's sandbox (sandboxNeeds), if anything.
 */
export function pinnedWait(id: string, worker: PinnedWorker | undefined, req: JobRequirements, sandbox: string | null = null): string {
  if (!worker) return `pinned to worker ${id}, which is no longer in the pool`;
  const who = worker.name ? `worker ${worker.name} (${worker.id})` : `worker ${worker.id}`;
  if (!worker.online) return `pinned to ${who}, which is offline`;
  if (worker.draining) return `pinned to ${who}, which is draining`;
  if (sandbox) return `pinned to ${who}, which does not offer ${sandbox}`;
  const never = neverFitsReason(req, [worker], worker.id);
  if (never) {
    // The pool-wide sentence, said of the one worker.
    const shortfall = never
      .replace(/^no online worker can ever fit it: /, "")
      .replace(/the largest online worker has|the most any online worker has is/g, "it has")
      .replace(/which no online worker has/g, "which it lacks");
    return `pinned to ${who}, which can never fit it: ${shortfall}`;
  }
  return `waiting for a free slot on ${who}`;
}
