import type { AgentToCoordinator, AttemptUsage, MessageOf, ResolvedCommits } from "../../../protocol/index.ts";
import type { AttemptWithJob, AttemptWrites } from "../db/attempts.ts";
import { lostRetriesLeft, retryAfterMs } from "../workflows/retry-policy.ts";
import { nextJobState, type JobEvent } from "./job-state.ts";

/*
 * How an attempt changes, decided without I/O: each function adds its change to an
 * `AttemptWrites` batch (an in-memory builder) and returns the attempt as the batch leaves it.
 */

/** An agent's report about one attempt, from the worker that sent it. */
export type Report =
  | { type: "job_accepted"; workerId: string; payload: MessageOf<AgentToCoordinator, "job_accepted">["payload"] }
  | { type: "job_started"; workerId: string; payload: MessageOf<AgentToCoordinator, "job_started">["payload"] }
  | { type: "job_result"; workerId: string; payload: MessageOf<AgentToCoordinator, "job_result">["payload"] };

/** The bounds a report turns into deadlines, in milliseconds. */
export interface ReportBounds {
  prepareTimeoutMs: number;
  deadlineGraceMs: number;
}

export type AttemptEnd = "finished" | "lost" | "canceling";

/** A lost attempt's event: requeued while the job has retries left. */
export const lostEvent = (a: AttemptWithJob): JobEvent => ({ type: "lost", retriesLeft: lostRetriesLeft(a.maxRetries, a.retry, a.jobAttempt) });

/** The coordinator's own timeout of a running attempt: retried when the job's policy names timeouts. */
export const timeoutEvent = (a: AttemptWithJob): JobEvent => ({ type: "timeout", retryInMs: retryAfterMs(a.retry, { attempt: a.attempt, failureReason: "timeout", exitCode: null }) });

/** Ends an attempt and, when it is its job's latest, moves the job as the state machine says. */
export function endAttempt(
  writes: AttemptWrites,
  a: AttemptWithJob,
  event: JobEvent,
  status: AttemptEnd,
  message: string | null,
  now: number,
  result: { exitCode: number | null; resolved?: ResolvedCommits; usage?: AttemptUsage } = { exitCode: null },
): AttemptWithJob {
  const transition = a.jobAttempt === a.attempt ? nextJobState(a.jobStatus, event) : null;
  const failureReason = event.type === "result" ? event.failureReason : event.type === "lost" ? "worker_lost" : event.type === "timeout" ? "timeout" : null;
  const retrying = transition?.retryInMs !== undefined ? `attempt ${a.attempt} failed (${failureReason ?? "exit_code"}${result.exitCode !== null ? ` ${result.exitCode}` : ""}); retrying in ${Math.round(transition.retryInMs / 1000)} s${message ? `: ${message}` : ""}` : null;
  return writes.end(a, { status, exitCode: result.exitCode, failureReason, usage: result.usage }, transition && { ...transition, message: retrying ?? message, resolved: result.resolved }, now);
}

/** The attempt is gone with its worker, or was never started: requeued while retries remain. */
export function loseAttempt(writes: AttemptWrites, a: AttemptWithJob, message: string, now: number): AttemptWithJob {
  // A canceling attempt's job has moved on already; only the slot is freed.
  if (a.status === "canceling") return writes.end(a, { status: "lost", exitCode: null, failureReason: "worker_lost" }, null, now);
  return endAttempt(writes, a, lostEvent(a), "lost", message, now);
}

/** The one change an admitted report makes to its attempt; null when it makes none (a repeat, or too late). */
export function applyReport(writes: AttemptWrites, a: AttemptWithJob, r: Report, now: number, bounds: ReportBounds): AttemptWithJob | null {
  if (r.type === "job_accepted") return a.status === "assigned" ? writes.accept(a, now + bounds.prepareTimeoutMs) : null;
  if (r.type === "job_started") return a.status === "assigned" ? writes.start(a, now, now + a.timeoutS * 1000 + bounds.deadlineGraceMs, r.payload.resolved ?? null) : null;
  const p = r.payload;
  if (a.status === "canceling") return writes.end(a, { status: "finished", exitCode: p.exit_code, failureReason: p.failure_reason, usage: p.usage }, null, now);
  if (a.status !== "assigned" && a.status !== "running") return null;
  // The agent itself lost the job (its lease lapsed and the warden stopped it): a lost attempt, retried while retries remain.
  if (p.failure_reason === "worker_lost") return endAttempt(writes, a, lostEvent(a), "lost", p.message ?? `attempt ${a.attempt} was lost by its agent`, now, { exitCode: null, usage: p.usage });
  const failed = p.exit_code !== 0 || p.failure_reason !== null;
  const retryInMs = failed ? retryAfterMs(a.retry, { attempt: a.attempt, failureReason: p.failure_reason ?? "exit_code", exitCode: p.exit_code }) : null;
  return endAttempt(writes, a, { type: "result", exitCode: p.exit_code, failureReason: p.failure_reason, retryInMs }, "finished", p.message, now, { exitCode: p.exit_code, resolved: p.resolved, usage: p.usage });
}

/** What the sweep does with an attempt past its deadline. */
export type DeadlineStep = { kind: "take_back"; bound: "START_TIMEOUT_S" | "PREPARE_TIMEOUT_S" } | { kind: "time_out" } | { kind: "wait" };

/**
 * An assignment past its deadline was not taken (START_TIMEOUT_S) or, once taken, not started
 * (PREPARE_TIMEOUT_S): taken back. A running attempt past its deadline outlived its timeout.
 * A taken attempt that waits on its agent for a slot (prefetched, see ledger.ts) is not late:
 * its prepare bound measures from when it could start, so it is armed afresh (`wait`).
 */
export function deadlineStep(a: Pick<AttemptWithJob, "status" | "deadlineAt" | "assignedAt">, startTimeoutMs: number, waiting = false): DeadlineStep {
  if (a.status !== "assigned") return { kind: "time_out" };
  const taken = a.deadlineAt !== null && a.deadlineAt - a.assignedAt > startTimeoutMs;
  if (taken && waiting) return { kind: "wait" };
  return { kind: "take_back", bound: taken ? "PREPARE_TIMEOUT_S" : "START_TIMEOUT_S" };
}
