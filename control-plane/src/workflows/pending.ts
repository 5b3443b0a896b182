import type { JobSpec, WorkerCaps } from "../../../protocol/index.ts";
import type { Db } from "../db/client.ts";
import type { JobRow } from "../db/jobs.ts";
import { listProjects, usageOf } from "../db/projects.ts";
import { capsOf, listWorkers } from "../db/workers.ts";
import { edgesOf, parentStates } from "../db/workflows.ts";
import { startHold } from "../quotas.ts";
import { sandboxNeeds, sandboxWait } from "../sandbox-policy.ts";
import { dependencyVerdict, waitingFor } from "./dependencies.ts";
import { neverFitsReason, pinnedWait, type PinnedWorker } from "./fit.ts";

type Queued = Pick<JobRow, "id" | "project" | "pool" | "status" | "spec" | "hold" | "notBefore" | "attempt">;

/** What a ready job that fits some online worker waits for. */
export const FREE_SLOT = "waiting for a free slot";

/**
 * Why each queued job among `rows` waits: its parents, a retry's backoff, a project quota, a
 * runtime or network no online worker offers, requirements no online worker can ever fit, or
 * else a free slot. A handful of statements for a whole page of jobs, whatever its size.
 */
export async function pendingReasons(db: Db, rows: readonly Queued[]): Promise<Map<string, string>> {
  const queued = rows.filter((r) => r.status === "queued");
  const reasons = new Map<string, string>();
  if (queued.length === 0) return reasons;
  await waitsOnParents(db, queued.filter((r) => r.hold === "deps"), reasons);
  for (const r of queued.filter((q) => q.hold === "retry")) {
    reasons.set(r.id, `retrying after its backoff: attempt ${r.attempt + 1} is queued at ${new Date(r.notBefore ?? 0).toISOString()}`);
  }
  const ready = queued.filter((r) => r.hold === null);
  await quotaHolds(db, ready, reasons);
  const online = new Map<string, { caps: WorkerCaps }[]>();
  const pinnable = new Map<string, PinnedWorker & { caps: WorkerCaps }>();
  for (const pool of new Set(ready.map((r) => r.pool))) {
    const all = await listWorkers(db, pool);
    online.set(pool, all.filter((w) => w.online && !w.drain).map((w) => ({ caps: capsOf(w) })));
    for (const w of all) pinnable.set(w.id, { id: w.id, name: w.name, online: w.online, draining: w.drain !== null, caps: capsOf(w) });
  }
  for (const r of ready) {
    if (reasons.has(r.id)) continue;
    const spec = r.spec as JobSpec;
    if (spec.worker) {
      const w = pinnable.get(spec.worker);
      reasons.set(r.id, pinnedWait(spec.worker, w, spec.requirements, w ? sandboxNeeds(spec, [w]) : null));
      continue;
    }
    const workers = online.get(r.pool) ?? [];
    // With no worker online, that is the whole story; else what the online ones lack.
    reasons.set(r.id, (workers.length ? sandboxWait(spec, workers) : null) ?? neverFitsReason(spec.requirements, workers, r.pool) ?? FREE_SLOT);
  }
  return reasons;
}

async function waitsOnParents(db: Db, held: readonly Queued[], reasons: Map<string, string>) {
  if (held.length === 0) return;
  const edges = await edgesOf(db, held.map((r) => r.id));
  const states = await parentStates(db, edges);
  for (const r of held) {
    const verdict = dependencyVerdict(edges.filter((e) => e.child === r.id).map((e) => ({ parent: e.parent, condition: e.condition, state: states.get(e.parent) })));
    // A release or failure not yet written (the engine is on its way): still its parents'.
    reasons.set(r.id, verdict.kind === "wait" ? waitingFor(verdict.on) : `waiting for its dependencies to be settled`);
  }
}

async function quotaHolds(db: Db, ready: readonly Queued[], reasons: Map<string, string>) {
  const names = [...new Set(ready.map((r) => r.project))];
  if (names.length === 0) return;
  const limited = (await listProjects(db, names)).filter((p) => p.quotas.max_running_jobs !== undefined || p.quotas.max_gpus !== undefined);
  if (limited.length === 0) return;
  const usage = await usageOf(db, limited.map((p) => p.name));
  const quotas = new Map(limited.map((p) => [p.name, p.quotas]));
  for (const r of ready) {
    const q = quotas.get(r.project);
    const u = usage.get(r.project);
    const hit = q && u ? startHold(q, u, (r.spec as JobSpec).requirements?.gpus ?? 0) : null;
    if (hit) reasons.set(r.id, hit.message);
  }
}
