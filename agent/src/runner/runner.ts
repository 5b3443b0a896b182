import type { AttemptSandbox, AttemptUsage, FailureReason, InputDownload, JobSpec, LogStream, RepoCredentials, ResolvedCommits, WarmCache } from "../../../protocol/index.ts";

export interface RunRequest {
  jobId: string;
  attempt: number;
  spec: JobSpec;
  gpuIndices: number[];
  /** Presigned downloads of the job's datasets, mounted read-only under /work/input. */
  inputs: InputDownload[];
  /** A repo job's git credentials, for this attempt only; never logged. */
  credentials?: RepoCredentials;
  /**
   * The values of `spec.secrets`, by variable, for this attempt's container only: never
   * logged or written to disk, and masked in all the run reports. One missing fails the job.
   */
  secretEnv?: Record<string, string>;
  /** The runtime and network this attempt's container gets, and what its environment build may reach. */
  sandbox: AttemptSandbox;
  /** The job's log cap, for the archived log as for the live one; absent, the runner's own. */
  logMaxBytes?: number;
}

/** How a run ended, as the agent reports it in `job_result`. */
export interface RunOutcome {
  exit_code: number | null;
  failure_reason: FailureReason | null;
  message: string | null;
  /** Repo jobs: the commits and image that ran. */
  resolved?: ResolvedCommits;
  /** What its container used, when it ran and its cgroup could be read. */
  usage?: AttemptUsage;
}

/** A job that cannot run as asked, and the failure reason that says why. */
export class TaskError extends Error {
  constructor(
    readonly reason: "input_error" | "image_error",
    message: string,
  ) {
    super(message);
  }
}

export interface RunHooks {
  /** The container is running (a repo job says which commits and image it runs). */
  started(resolved?: ResolvedCommits): void;
  output(stream: LogStream, chunk: Buffer): void;
  system(text: string): void;
  /** True while logs are not getting through fast enough; the runner stops reading output until it is false. */
  congested(): boolean;
  /**
   * Resolves when the job may start: a slot is free for it. The runner prepares first (its
   * files, inputs and sandbox), so a job prefetched while every slot was busy starts the moment
   * one frees. Absent: at once.
   */
  slot?(): Promise<void>;
  /** The job's container has exited (or none will start): its slot is free for the next. */
  exited?(): void;
  /** The job's container has started: the tunnel may reach into it (by this id) until `exited`. */
  reachable?(container: string): void;
}

/** Why a run was stopped before it ended by itself; "lease": this agent lost its lease, and the warden stopped (or will stop) its containers. */
export type StopReason = "timeout" | "user" | "stale" | "drain" | "output_too_large" | "lease";

/** Runs jobs somewhere (Docker here); the agent only sees this. */
export interface JobRunner {
  run(req: RunRequest, hooks: RunHooks, stop: AbortSignal): Promise<RunOutcome>;
  /** Removes containers and job folders left by an earlier, crashed agent. */
  cleanupLeftovers(): Promise<number>;
  /** Begins getting ready for jobs ahead of them (prestarted sandboxes); after `cleanupLeftovers`, which would undo it. */
  start(): void | Promise<void>;
  /** Stops getting ready for new jobs and removes what waited; running jobs go on. Safe to call more than once. */
  close(): Promise<void>;
  /** Names the runner images missing on this machine. */
  missingImages(): Promise<string[]>;
  /** The environments and repositories this worker has cached. */
  warm(): Promise<WarmCache>;
}
