import type { FailureReason, InputDownload, JobSpec, LogStream } from "../../../protocol/index.ts";

export interface RunRequest {
  jobId: string;
  attempt: number;
  spec: JobSpec;
  gpuIndices: number[];
  /** Presigned downloads of the job's datasets, mounted read-only under /work/input. */
  inputs: InputDownload[];
}

/** How a run ended, as the agent reports it in `job_result`. */
export interface RunOutcome {
  exit_code: number | null;
  failure_reason: FailureReason | null;
  message: string | null;
}

export interface RunHooks {
  /** The container is running. */
  started(): void;
  output(stream: LogStream, chunk: Buffer): void;
  system(text: string): void;
  /** True while logs are not getting through fast enough; the runner stops reading output until it is false. */
  congested(): boolean;
}

/** Why a run was stopped before it ended by itself. */
export type StopReason = "timeout" | "user" | "stale" | "drain" | "output_too_large";

/** Runs jobs somewhere (Docker here); the agent only sees this. */
export interface JobRunner {
  run(req: RunRequest, hooks: RunHooks, stop: AbortSignal): Promise<RunOutcome>;
  /** Removes containers and job folders left by an earlier, crashed agent. */
  cleanupLeftovers(): Promise<number>;
  /** Names the runner images missing on this machine. */
  missingImages(): Promise<string[]>;
}
