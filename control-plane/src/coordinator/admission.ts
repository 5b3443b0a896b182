import type { AttemptRef } from "../../../protocol/index.ts";
import { HOLDING, type AttemptWithJob } from "../db/attempts.ts";
import { attemptKey as key } from "./ledger.ts";

/**
 * What the coordinator does with an agent's message about one attempt:
 * - `admit`: the sending worker holds the attempt; the message counts.
 * - `fenced`: the sender held it once, but it is over (lost, timed out, finished, taken back):
 *   a late or repeated report. Nothing is written; a result is still acknowledged, so the
 *   agent stops re-sending it.
 * - `refused`: the sender never held it (another worker's attempt, or none at all). Nothing
 *   is written, the agent gets an error frame, and the refusal is counted.
 */
export type Admission = { kind: "admit"; attempt: AttemptWithJob } | { kind: "fenced"; reason: string } | { kind: "refused"; reason: string };

/**
 * Decides a message about `ref` from worker `sender`. `held` is the ledger's copy (attempts
 * connected workers hold); `recorded` is D1's row, read only when the ledger has none. D1 is
 * the record: an attempt it says the sender still holds is admitted even when the ledger
 * missed it (a reconnect racing the old socket's close).
 */
export function admission(sender: string, ref: AttemptRef, held: AttemptWithJob | undefined, recorded: AttemptWithJob | undefined): Admission {
  const name = `attempt ${ref.attempt} of job ${ref.job_id}`;
  if (held) return held.workerId === sender ? { kind: "admit", attempt: held } : { kind: "refused", reason: `${name} is not this worker's` };
  if (recorded?.workerId !== sender) return { kind: "refused", reason: `${name} is not this worker's` };
  if ((HOLDING as readonly string[]).includes(recorded.status)) return { kind: "admit", attempt: recorded };
  return { kind: "fenced", reason: `${name} is over (${recorded.status}); this report is ignored` };
}

/** What a reconnected agent's report of its jobs asks of the coordinator, per attempt. */
export type ReconcileStep =
  | { kind: "resend"; attempt: AttemptWithJob }
  | { kind: "confirm_cancel"; attempt: AttemptWithJob }
  | { kind: "lost"; attempt: AttemptWithJob }
  | { kind: "cancel_stale"; ref: AttemptRef };

/**
 * Brings the record and a reconnected agent into agreement (pure): an assignment the agent
 * never got is sent again, a canceling attempt the agent no longer runs is over, a running
 * attempt it lost is lost, and anything it runs that is not its to run is canceled.
 */
export function reconcile(held: readonly AttemptWithJob[], reported: readonly AttemptRef[]): ReconcileStep[] {
  const reportedKeys = new Set(reported.map((r) => key(r.job_id, r.attempt)));
  const heldKeys = new Set(held.map((a) => key(a.jobId, a.attempt)));
  const steps: ReconcileStep[] = [];
  for (const a of held) {
    if (reportedKeys.has(key(a.jobId, a.attempt))) continue;
    if (a.status === "assigned") steps.push({ kind: "resend", attempt: a });
    else if (a.status === "canceling") steps.push({ kind: "confirm_cancel", attempt: a });
    else steps.push({ kind: "lost", attempt: a });
  }
  for (const r of reported) if (!heldKeys.has(key(r.job_id, r.attempt))) steps.push({ kind: "cancel_stale", ref: r });
  return steps;
}
