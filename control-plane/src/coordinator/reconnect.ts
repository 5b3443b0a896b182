import type { AttemptRef, CoordinatorToAgent } from "../../../protocol/index.ts";
import type { AttemptWithJob, AttemptWrites } from "../db/attempts.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { logStreamOf } from "../logs/log-stream.ts";
import { reconcile as reconcileSteps } from "./admission.ts";
import { loseAttempt } from "./attempt-changes.ts";
import { attemptKey } from "./ledger.ts";

/* What a reconnected agent is told: its attempts set straight against the record, and where each of its logs resumes. */

export interface ReconnectContext {
  commit(decide: (writes: AttemptWrites) => unknown): Promise<void>;
  /** Sends an assignment again, as built now. */
  resend(a: AttemptWithJob): Promise<void>;
  send(workerId: string, message: CoordinatorToAgent): void;
}

/** Applies what admission.ts says a worker's report of its jobs asks for, against what the record holds for it. */
export async function reconcile(c: ReconnectContext, workerId: string, held: AttemptWithJob[], reported: AttemptRef[], now: number): Promise<void> {
  for (const step of reconcileSteps(held, reported)) {
    if (step.kind === "resend") await c.resend(step.attempt);
    else if (step.kind === "confirm_cancel") await c.commit((w) => w.end(step.attempt, { status: "finished", exitCode: null, failureReason: null }, null, now));
    else if (step.kind === "lost") await c.commit((w) => loseAttempt(w, step.attempt, `attempt ${step.attempt.attempt} was lost: its agent restarted without it`, now));
    else c.send(workerId, { type: "cancel_job", payload: { ...step.ref, reason: "stale" } });
  }
}

/**
 * For each attempt a reconnected agent reported and still holds, the last log batch stored,
 * so it re-sends what the old socket lost. The caller sends them before any later frame of the
 * socket is read (frames are handled in order), so no newer batch of the agent's is counted in
 * them. An attempt whose seq cannot be read gets none: the agent sends on after its wait.
 */
export async function logResumes(env: Bindings, pool: string, mine: AttemptWithJob[], reported: AttemptRef[]): Promise<CoordinatorToAgent[]> {
  const reportedKeys = new Set(reported.map((r) => attemptKey(r.job_id, r.attempt)));
  const resumed = mine.filter((a) => reportedKeys.has(attemptKey(a.jobId, a.attempt)));
  const seqs = await Promise.all(
    resumed.map((a) =>
      logStreamOf(env, a.jobId)
        .lastSeq(a.jobId, a.attempt)
        .catch((err: unknown) => {
          console.error(`coordinator(${pool}): reading the last log batch of ${a.jobId} failed; its agent sends on after its wait`, errorText(err));
          return null;
        }),
    ),
  );
  return resumed.flatMap((a, i) => (seqs[i] === null || seqs[i] === undefined ? [] : [{ type: "log_resume" as const, payload: { job_id: a.jobId, attempt: a.attempt, after_seq: seqs[i] } }]));
}
