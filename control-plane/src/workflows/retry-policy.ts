import { WORKFLOW_LIMITS, type FailureReason, type RetryPolicy } from "../../../protocol/index.ts";

/*
 * When a failed attempt is tried again (pure). `max` counts retries, so a job makes at most
 * 1 + max attempts under its policy; a vanished worker is also retried under the job's older
 * `max_retries`, whichever allows more.
 */

/** The outcome of one attempt, as its agent (or the coordinator's timeout backstop) classified it. */
export interface AttemptOutcome {
  attempt: number;
  failureReason: FailureReason | null;
  exitCode: number | null;
}

/** How long a retry waits: backoff_s, doubled for each retry after the first, at most the cap. */
export function backoffMs(policy: Pick<RetryPolicy, "backoff_s">, attempt: number): number {
  const s = Math.min(WORKFLOW_LIMITS.backoff_cap_s, policy.backoff_s * 2 ** Math.max(0, attempt - 1));
  return s * 1000;
}

/** Whether the policy names this outcome: its reason, and for exit codes, the code. */
export function retryable(policy: RetryPolicy, o: AttemptOutcome): boolean {
  if (o.failureReason === "exit_code") return policy.on.includes("exit_code") && o.exitCode !== 0 && (policy.exit_codes === undefined || (o.exitCode !== null && policy.exit_codes.includes(o.exitCode)));
  return o.failureReason === "timeout" || o.failureReason === "oom" || o.failureReason === "worker_lost" ? policy.on.includes(o.failureReason) : false;
}

/** Milliseconds until the failed attempt's job is tried again, or null when it is not. */
export function retryAfterMs(policy: RetryPolicy | null, o: AttemptOutcome): number | null {
  if (!policy || o.attempt > policy.max || !retryable(policy, o)) return null;
  return backoffMs(policy, o.attempt);
}

/** Whether a job whose attempt was lost with its worker gets another. */
export function lostRetriesLeft(maxRetries: number, policy: RetryPolicy | null, attempt: number): boolean {
  const allowed = Math.max(maxRetries, policy?.on.includes("worker_lost") ? policy.max : 0);
  return attempt <= allowed;
}
