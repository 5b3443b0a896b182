import { JobRequest, type JobSpec } from "../../../protocol/index.ts";
import { requireRole } from "../auth/access.ts";
import type { Principal } from "../auth/principal.ts";
import { broadcastParts, type BroadcastPart } from "../db/broadcasts.ts";
import { listWorkers } from "../db/workers.ts";
import { AppError } from "../errors.ts";
import { newId } from "../ids.ts";
import { parseWith } from "../middleware/validate.ts";
import { noProject } from "../routes/guards.ts";
import { settingsOf } from "../settings.ts";
import { errorUnder } from "./batch.ts";
import { submitJob, type SubmitContext } from "./submit.ts";

/** A pool's worker as a broadcast chooses among them. */
export interface Candidate {
  id: string;
  name: string;
  online: boolean;
  draining: boolean;
}

/**
 * Which workers a broadcast runs on (pure): the listed ones, each of the pool and online and not
 * draining (a job there would only wait), or else every such worker, by name; at most `max`.
 * A refusal names the field at fault.
 */
export function broadcastTargets(pool: string, workers: readonly Candidate[], listed: readonly string[] | undefined, max: number): { ids: string[] } | { field: string; message: string; status: 400 | 409 | 413 } {
  if (listed) {
    // The bound first: a body may list tens of thousands of ids.
    if (listed.length > max) return { field: "workers", message: `workers: ${listed.length} workers; a broadcast runs on at most ${max} (BROADCAST_MAX_WORKERS)`, status: 413 };
    const byId = new Map(workers.map((w) => [w.id, w]));
    const seen = new Set<string>();
    for (const [i, id] of listed.entries()) {
      const w = byId.get(id);
      const problem = seen.has(id) ? "is listed twice" : !w ? `is not a worker of pool ${pool}` : !w.online ? `(${w.name}) is offline` : w.draining ? `(${w.name}) is draining` : null;
      if (problem) return { field: `workers.${i}`, message: `workers.${i}: ${id} ${problem}`, status: 400 };
      seen.add(id);
    }
    return { ids: [...listed] };
  }
  const ready = workers.filter((w) => w.online && !w.draining).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (ready.length === 0) return { field: "pool", message: `pool: pool ${pool} has no online worker that takes jobs`, status: 409 };
  if (ready.length > max) return { field: "workers", message: `workers: pool ${pool} has ${ready.length} online workers; a broadcast runs on at most ${max} (BROADCAST_MAX_WORKERS): list them in parts`, status: 413 };
  return { ids: ready.map((w) => w.id) };
}

const CODE = { 400: "validation_failed", 409: "conflict", 413: "payload_too_large" } as const;

/**
 * Submits one job per target worker of `pool`, each the template pinned to its worker, in one
 * transaction with the broadcast that records them, as a member of the template's project.
 * Every check of POST /v1/jobs applies (its fields named under `job.`).
 */
export async function submitBroadcast(c: SubmitContext, principal: Principal, pool: string, raw: Record<string, unknown>, listed: readonly string[] | undefined): Promise<{ id: string; project: string; jobs: { worker: string; job_id: string }[] }> {
  for (const field of ["worker", "array"] as const) {
    if (raw[field] !== undefined) throw new AppError("validation_failed", `job.${field}: a broadcast makes one job per worker, each pinned to its worker; leave ${field} out`, `job.${field}`);
  }
  if (raw["pool"] !== undefined && raw["pool"] !== pool) throw new AppError("validation_failed", `job.pool: the broadcast is to pool ${pool}; leave pool out or give ${pool}`, "job.pool");
  const spec = parseWith(JobRequest, { ...raw, pool }, "job") as JobSpec;
  // Before the pool's workers are looked at, so they say nothing to someone outside the project.
  requireRole(principal, spec.project, "member", noProject(spec.project, "job.project"));
  const workers = await listWorkers(c.db, pool);
  const targets = broadcastTargets(
    pool,
    workers.map((w) => ({ id: w.id, name: w.name, online: w.online, draining: w.drain !== null })),
    listed,
    settingsOf(c.env).BROADCAST_MAX_WORKERS,
  );
  if ("field" in targets) throw new AppError(CODE[targets.status], targets.message, targets.field);
  const id = newId("b");
  try {
    await submitJob(c, principal, spec, { broadcast: { id, workers: targets.ids } });
  } catch (err) {
    throw err instanceof AppError && err.field !== "workers" ? errorUnder("job", err) : err;
  }
  const parts = new Map((await broadcastParts(c.db, id)).map((p) => [p.workerId, p.jobId]));
  return { id, project: spec.project, jobs: targets.ids.map((worker) => ({ worker, job_id: parts.get(worker)! })) };
}

/** A broadcast's jobs as GET /v1/broadcasts/:id shows them: each worker's outcome, counted by status. */
export function broadcastProgress(parts: readonly BroadcastPart[]) {
  const counts = { queued: 0, assigned: 0, running: 0, completed: 0, failed: 0, canceled: 0 };
  for (const p of parts) counts[p.status] += 1;
  return {
    workers: parts.map((p) => ({
      worker_id: p.workerId,
      worker_name: p.workerName,
      job_id: p.jobId,
      status: p.status,
      exit_code: p.exitCode,
      failure_reason: p.failureReason,
      finished_at: p.finishedAt === null ? null : new Date(p.finishedAt).toISOString(),
    })),
    counts,
    done: counts.queued + counts.assigned + counts.running === 0,
  };
}
