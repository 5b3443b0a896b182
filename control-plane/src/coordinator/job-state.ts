import type { FailureReason, JobStatus } from "../../../protocol/index.ts";

/** What can happen to a job; each maps to at most one next state. */
export type JobEvent =
  | { type: "assign" }
  | { type: "start" }
  | { type: "result"; exitCode: number | null; failureReason: FailureReason | null }
  | { type: "cancel" }
  | { type: "timeout" }
  | { type: "lost"; retriesLeft: boolean };

export type Transition = { status: JobStatus; failureReason: FailureReason | null; exitCode: number | null };

const ACTIVE: readonly JobStatus[] = ["assigned", "running"];

/**
 * The job state machine: `queued → assigned → running → completed | failed | canceled`,
 * with a lost attempt going back to `queued` while retries remain. Returns null when the
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
      return to("failed", event.failureReason ?? "exit_code", event.exitCode);
    case "cancel":
      return status === "queued" || ACTIVE.includes(status) ? to("canceled") : null;
    case "timeout":
      return ACTIVE.includes(status) ? to("failed", "timeout") : null;
    case "lost":
      if (!ACTIVE.includes(status)) return null;
      return event.retriesLeft ? to("queued") : to("failed", "worker_lost");
  }
}

export function isTerminal(status: JobStatus): boolean {
  return status === "completed" || status === "failed" || status === "canceled";
}
