import type { FailureReason, JobStatus } from "../../protocol/index.ts";

/** What the CLI exits with; `run` and `submit --wait` add the job's own codes (see `jobExitCode`). */
export const EXIT = {
  ok: 0,
  /** The server refused the request, the network failed, a download did not verify. */
  error: 1,
  /** An unknown command or flag, a missing or malformed argument. */
  usage: 2,
  /** Not logged in, or the token was refused (401) or may not do this (403). */
  auth: 3,
  /** The job hit its timeout (as coreutils `timeout`). */
  timeout: 124,
  /** The job failed without an exit code of its own (as `docker run` when the daemon fails). */
  noExitCode: 125,
  /** The job was canceled, or gridx was interrupted (128 + SIGINT). */
  canceled: 130,
  /** The job ran out of memory (128 + SIGKILL, as Docker's OOM kill). */
  oom: 137,
} as const;

/** The exit-code section of `--help` and of the README. */
export const EXIT_CODES_HELP = `Exit codes:
  0    success (run, submit --wait: the job completed)
  1    an error: the server refused the request, the network failed, a download did not verify
  2    bad usage: an unknown command or flag, a missing or malformed argument
  3    not logged in, or the token was refused (401) or may not do this (403)
  run and submit --wait, once the job has ended:
  N    the job failed with its own exit code N
  124  the job hit its timeout
  125  the job failed without an exit code of its own (image_error, input_error, worker_lost,
       output_too_large, canceled_by_worker, internal)
  130  the job was canceled (Ctrl-C during run cancels it)
  137  the job ran out of memory`;

/**
 * The exit code `gridx run` ends with for a finished job, like `docker run`: the job's own
 * code when it ran to an exit, a fixed code for each way it can end without one.
 *
 * @example
 * jobExitCode({ status: "failed", exit_code: 3, failure_reason: "exit_code" }) // 3
 */
export function jobExitCode(job: { status: JobStatus; exit_code: number | null; failure_reason: FailureReason | null }): number {
  switch (job.status) {
    case "completed":
      return EXIT.ok;
    case "canceled":
      return EXIT.canceled;
    case "failed":
      if (job.failure_reason === "timeout") return EXIT.timeout;
      if (job.failure_reason === "oom") return EXIT.oom;
      if (job.failure_reason === "exit_code" && job.exit_code !== null && job.exit_code > 0 && job.exit_code < 256) return job.exit_code;
      return EXIT.noExitCode;
    default:
      // Not finished: the caller waits for a terminal status first.
      return EXIT.error;
  }
}
