import type { CoordinatorToAgent, JobSpec } from "../../../protocol/index.ts";
import { holdingAttempts, pastDeadline, type AttemptWrites } from "../db/attempts.ts";
import type { Db } from "../db/client.ts";
import { silentSince } from "../db/workers.ts";
import { expiredQueued, failUnschedulable } from "../db/workflows.ts";
import type { Bindings } from "../env.ts";
import { jobEventsWritten } from "../events/notify.ts";
import type { Settings } from "../settings.ts";
import { neverFitsReason, pinnedWait, type PinnedWorker } from "../workflows/fit.ts";
import { deadlineStep, endAttempt, loseAttempt, timeoutEvent } from "./attempt-changes.ts";
import type { PoolLedger } from "./ledger.ts";
import type { WorkerView } from "./scheduler.ts";

/*
 * What the coordinator's sweep does when nothing else would: a silent worker's attempts
 * requeued, deadlines enforced, ready jobs past their queue_ttl_s failed. Each runs inside the
 * coordinator's exclusive section and writes through its commit, so the ledger stays the record's copy.
 */

export interface BackstopContext {
  db: Db;
  env: Bindings;
  settings: Settings;
  /** Workers with a socket on this object now. */
  connected(): string[];
  ledger(): Promise<PoolLedger>;
  commit(decide: (writes: AttemptWrites) => unknown): Promise<void>;
  send(workerId: string, message: CoordinatorToAgent): void;
}

/** Jobs past their queue_ttl_s failed per sweep at most; more wait for the next. */
const EXPIRE_BATCH = 100;

/** The attempts of workers silent since `cutoff` and not connected here: lost, and requeued while retries remain. */
export async function requeueLostWorkers(c: BackstopContext, pool: string, cutoff: number): Promise<void> {
  const connected = new Set(c.connected());
  const silent = (await silentSince(c.db, pool, cutoff)).map((w) => w.id).filter((id) => !connected.has(id));
  for (const a of await holdingAttempts(c.db, silent)) {
    await c.commit((w) => loseAttempt(w, a, `attempt ${a.attempt} was lost: worker ${a.workerId} went silent`, Date.now()));
  }
}

/**
 * An assignment not taken or started in time is taken back and requeued (the agent is told to
 * drop it), and a job its agent did not stop at its timeout is failed (or retried, as its
 * policy says).
 */
export async function enforceDeadlines(c: BackstopContext, pool: string, now: number): Promise<void> {
  const startTimeoutMs = c.settings.START_TIMEOUT_S * 1000;
  const ledger = await c.ledger();
  for (const a of await pastDeadline(c.db, pool, now, startTimeoutMs)) {
    const step = deadlineStep(a, startTimeoutMs, ledger.waiting(a.jobId, a.attempt));
    if (step.kind === "wait") {
      await c.commit((w) => w.accept(a, now + c.settings.PREPARE_TIMEOUT_S * 1000));
      continue;
    }
    if (step.kind === "take_back") {
      await c.commit((w) => loseAttempt(w, a, `attempt ${a.attempt} was not started in time (${step.bound}); taken back from worker ${a.workerId}`, now));
    } else {
      await c.commit((w) => endAttempt(w, a, timeoutEvent(a), "canceling", "the job ran past its timeout and the agent did not stop it", now));
    }
    c.send(a.workerId, { type: "cancel_job", payload: { job_id: a.jobId, attempt: a.attempt, reason: step.kind === "take_back" ? "stale" : "timeout" } });
  }
}

/** Fails ready jobs that waited out their queue_ttl_s, saying why no worker took them. */
export async function expireQueued(c: BackstopContext, pool: string, now: number): Promise<void> {
  const expired = await expiredQueued(c.db, pool, now, EXPIRE_BATCH);
  if (expired.length === 0) return;
  const views = (await c.ledger()).views();
  const workers = views.filter((w) => !w.draining);
  const failures = expired.map(({ id, spec }) => {
    const s = JSON.parse(spec) as JobSpec;
    const why = s.worker ? pinnedWait(s.worker, pinnedView(s.worker, views), s.requirements) : (neverFitsReason(s.requirements, workers, pool) ?? "every worker that fits it stayed busy");
    return { id, message: `unschedulable: waited queue_ttl_s (${s.queue_ttl_s} s) without a worker to run it: ${why}` };
  });
  const failed = await failUnschedulable(c.db, failures, now);
  void jobEventsWritten(c.env, failed.map((j) => j.project));
}

/** A pinned job's worker among those connected here: online, or else gone from the coordinator's view (offline). */
function pinnedView(id: string, connected: readonly WorkerView[]): PinnedWorker {
  const w = connected.find((v) => v.id === id);
  return w ? { id, online: true, draining: w.draining, caps: w.caps } : { id, online: false, draining: false, caps: { cpu_cores: 0, memory_mb: 0, gpus: [], labels: {} } };
}
