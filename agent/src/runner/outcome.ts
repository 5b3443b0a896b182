import type { FailureReason, JobLimits } from "../../../protocol/index.ts";
import { DockerTimeoutError } from "../docker/engine.ts";
import { TaskError, type RunOutcome, type StopReason } from "./runner.ts";

/** A run's outcome, less what the run resolved (a repo job's commits) and what it used. */
export type Verdict = Omit<RunOutcome, "resolved" | "usage">;

export const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** How a container that ran to its exit ended, as the runner saw it. */
export interface ExitFacts {
  exitCode: number;
  /** Why the agent stopped it, if it did. */
  stopReason: StopReason | null;
  oomKilled: boolean;
  /** Why its output broke the limits (too many files, bytes or entries), or null when it kept to them. */
  outputOver: string | null;
  /** Why its outputs could not be uploaded, or null. */
  uploadError: string | null;
  limits: JobLimits;
}

/**
 * The outcome of a job whose container ran and exited. The order is the blame's: a lapsed
 * lease is the worker's (the job runs again elsewhere), a failed upload the agent's, then
 * what the job did (output over its limits, its timeout, a stop asked of it), what the
 * kernel did (OOM), and last its own exit code.
 *
 * @example
 * classifyExit({ exitCode: 137, stopReason: "timeout", oomKilled: false, outputOver: null, uploadError: null, limits });
 * // { exit_code: 137, failure_reason: "timeout", message: "the job ran longer than its timeout of 3600s" }
 */
export function classifyExit(f: ExitFacts): Verdict {
  const failed = (failure_reason: FailureReason, message: string): Verdict => ({ exit_code: f.exitCode, failure_reason, message });
  if (f.stopReason === "lease") return failed("worker_lost", "this worker lost its lease with the control plane, so its container was stopped; the job runs again elsewhere");
  if (f.uploadError) return failed("internal", `the job ran, but its outputs could not be uploaded: ${f.uploadError}`);
  if (f.outputOver) return failed("output_too_large", f.outputOver);
  if (f.stopReason === "output_too_large") return failed("output_too_large", "the job's output went over its limits");
  if (f.stopReason === "timeout") return failed("timeout", `the job ran longer than its timeout of ${f.limits.timeout_s}s`);
  if (f.stopReason) return failed("canceled_by_worker", `stopped: ${f.stopReason}`);
  if (f.oomKilled) return failed("oom", `the job used more than its memory limit of ${f.limits.memory_mb} MiB`);
  return f.exitCode === 0 ? { exit_code: 0, failure_reason: null, message: null } : failed("exit_code", `the job exited with code ${f.exitCode}`);
}

/**
 * A job that never ran because a step before its start failed. The Docker engine not
 * answering is the agent's trouble (internal), whatever the step; any other failure is
 * `reason`'s (image_error for an image or container the engine refused, input_error for an
 * input that could not be had).
 */
export function failedStep(err: unknown, reason: FailureReason, message: string): Verdict {
  if (err instanceof DockerTimeoutError) return { exit_code: null, failure_reason: "internal", message: err.message };
  return { exit_code: null, failure_reason: reason, message: `${message}: ${errorText(err)}` };
}

/** A job that could not be got ready: stopped meanwhile, refused as asked (a TaskError), or its input not to be had. */
export function prepareFailure(err: unknown, stopped: StopReason | null): Verdict {
  if (stopped === "lease") return { exit_code: null, failure_reason: "worker_lost", message: "this worker lost its lease while preparing the job; it runs again elsewhere" };
  if (stopped) return { exit_code: null, failure_reason: "canceled_by_worker", message: `stopped while preparing (${stopped})` };
  if (err instanceof TaskError) return { exit_code: null, failure_reason: err.reason, message: err.message };
  return failedStep(err, "input_error", "could not prepare the job's input");
}
