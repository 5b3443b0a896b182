import type { FailureReason, JobStatus } from "../../../protocol/index.ts";

/** What can happen to a job; each maps to at most one next state. */
export type JobEvent =
  | { type: "assign" }
  | { type: "start" }
  | { type: "result"; exitCode: number | null; failureReason: FailureReason | null; retryInMs: number | null }
  | { type: "cancel" }
  | { type: "timeout"; retryInMs: number | null }
  | { type: "lost"; retriesLeft: boolean };

/** `retryInMs`: a failed attempt's job goes back to the queue, to wait that long first (its retry policy's backoff). */
export type Transition = { status: JobStatus; failureReason: FailureReason | null; exitCode: number | null; retryInMs?: number };

const ACTIVE: readonly JobStatus[] = ["assigned", "running"];

/**
 * The job state machine: `queued → assigned → running → completed | failed | canceled`,
 * with a lost attempt going back to `queued` while retries remain, and a failed one when its
 * retry policy says (the event carries that decision, retry-policy.ts). Returns null when the
 * event does not apply in that state (a late or duplicated message), which callers ignore.
 */
export function nextJobState(status: JobStatus, event: JobEvent): Transition | null {
  const to = (s: JobStatus, failureReason: FailureReason | null = null, exitCode: number | null = null): Transition => ({
    status: s,
    failureReason,
    exitCode,
  });
  switch (event.type) {
    case "assign":
      return status === "queued" ? to("assigned") : null;
    case "start":
      return status === "assigned" ? to("running") : null;
    case "result":
      if (!ACTIVE.includes(status)) return null;
      if (event.exitCode === 0 && event.failureReason === null) return to("completed", null, 0);
      if (event.retryInMs !== null) return { ...to("queued"), retryInMs: event.retryInMs };
      return to("failed", event.failureReason ?? "exit_code", event.exitCode);
    case "cancel":
      return status === "queued" || ACTIVE.includes(status) ? to("canceled") : null;
    case "timeout":
      if (!ACTIVE.includes(status)) return null;
      return event.retryInMs !== null ? { ...to("queued"), retryInMs: event.retryInMs } : to("failed", "timeout");
    case "lost":
      if (!ACTIVE.includes(status)) return null;
      return event.retriesLeft ? to("queued") : to("failed", "worker_lost");
  }
}

export function isTerminal(status: JobStatus): boolean {
  return status === "completed" || status === "failed" || status === "canceled";
}
