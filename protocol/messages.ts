import { z } from "zod";
import { EnvName, FailureReason, JOB_LIMITS, JobSpec, Labels } from "./job.ts";
import { RepoCredentials, ResolvedCommits, WarmCache } from "./repo.ts";
import { AttemptSandbox, Runtime } from "./sandbox.ts";
import { UpgradeOrder, UpgradeReport } from "./upgrade.ts";

const JobId = z.string().min(1).max(64);
/** Far above any job's retries: an attempt number past it is a forged or broken message. */
const Attempt = z.number().int().min(1).max(10_000);
/** A process's exit status as any platform reports it (Windows' are unsigned 32-bit). */
const ExitCode = z.number().int().min(-(2 ** 31)).max(2 ** 32 - 1);
/** Names one try of one job; messages about an older try are stale and ignored. */
export const AttemptRef = z.object({ job_id: JobId, attempt: Attempt });
export type AttemptRef = z.infer<typeof AttemptRef>;

/**
 * Upper bounds on what a machine may advertise: far above any real machine, so a
 * capability past one is a broken or hostile agent, never scheduled on.
 */
export const CAPS_LIMITS = {
  cpu_cores: 4096,
  /** 64 TiB. */
  memory_mb: 64 * 1024 * 1024,
  gpus: 64,
  gpu_index: 1023,
  /** 1 TiB. */
  gpu_memory_mb: 1024 * 1024,
  /** Attempts an agent holds waiting beyond its slots: a small read-ahead, never a second queue. */
  prefetch: 8,
} as const;

export const GpuDevice = z.object({
  index: z.number().int().min(0).max(CAPS_LIMITS.gpu_index),
  model: z.string().max(200),
  memory_mb: z.number().int().min(0).max(CAPS_LIMITS.gpu_memory_mb),
});
export type GpuDevice = z.infer<typeof GpuDevice>;

/** What an agent's machine offers, as it advertises it in `hello`. */
export const WorkerCaps = z.object({
  cpu_cores: z.number().positive().max(CAPS_LIMITS.cpu_cores),
  memory_mb: z.number().int().positive().max(CAPS_LIMITS.memory_mb),
  gpus: z.array(GpuDevice).max(CAPS_LIMITS.gpus),
  nvidia_runtime: z.boolean(),
  labels: Labels,
  os: z.string().max(100),
  arch: z.string().max(50),
  wsl: z.boolean(),
  /** Runtimes registered with this machine's dockerd that the agent can run jobs on. */
  runtimes: z.array(Runtime).default(["runc"]),
  /** Whether the agent keeps a filtered network for jobs that ask for egress (it needs CAP_NET_ADMIN on the host). */
  egress: z.boolean().default(false),
  /**
   * Attempts the coordinator may assign beyond the free slots: they wait on the agent, taken
   * and prepared, and start the moment a slot frees (see `startsBeside`). Absent: none, as
   * agents that predate it expect.
   */
  prefetch: z.number().int().min(0).max(CAPS_LIMITS.prefetch).optional(),
  /** Whether the agent serves jobs' declared ports through the tunnel (it has a static busybox to relay with); absent: agents that predate it, which do not. */
  ports: z.boolean().default(false),
});
export type WorkerCaps = z.infer<typeof WorkerCaps>;

/** `build`: output of building a repo job's environment image, before the job itself runs. */
export const LogStream = z.enum(["stdout", "stderr", "system", "build"]);
export type LogStream = z.infer<typeof LogStream>;
/** Bounds on log frames; the agent splits longer lines into pieces before sending (see its LogLimits). */
export const LOG_LIMITS = {
  /** The agent's pieces (64 KiB), with room to spare. */
  line_chars: 64 * 1024 + 256,
  /** The largest log cap (LOG_MAX_BYTES) an assignment may carry: 1 TiB. */
  max_bytes: 2 ** 40,
  /** Batches of one attempt's log: far more than an attempt's output cap allows. */
  seq_max: 10_000_000,
  /** Text in one `job_log`: the agent sends 64 KiB batches (plus one line). */
  batch_chars: 1024 * 1024,
} as const;

export const LogLine = z.object({
  stream: LogStream,
  text: z.string().max(LOG_LIMITS.line_chars),
  ts: z.number().int().min(0).max(8.64e15),
});
export type LogLine = z.infer<typeof LogLine>;

/** One job input as the agent fetches it: a presigned GET issued for this attempt. */
export const InputDownload = z.object({
  dataset: z.string(),
  path: z.string(),
  url: z.string().url(),
  size: z.number().int().min(0),
  /** Hex SHA-256 when the dataset declared one: the agent verifies it and caches by it. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
});
export type InputDownload = z.infer<typeof InputDownload>;

/**
 * What one attempt consumed: CPU seconds and peak memory from its container's cgroup, GPU
 * seconds as the devices it held times its run, and its wall time (start to exit).
 */
export const AttemptUsage = z.object({
  cpu_s: z.number().min(0).max(1e9),
  peak_memory_mb: z.number().min(0).max(1e9),
  gpu_s: z.number().min(0).max(1e9),
  wall_s: z.number().min(0).max(1e9),
});
export type AttemptUsage = z.infer<typeof AttemptUsage>;

/** Bounds on maintenance probes; the agent's own config may be stricter. */
export const PROBE_LIMITS = {
  command_chars: 1000,
  timeout_s: { min: 1, max: 300, default: 30 },
  output_bytes: 64 * 1024,
} as const;

/** The body of `POST /v1/workers/:id/probes`. */
export const ProbeRequest = z
  .object({
    command: z.string().min(1, "command is empty").max(PROBE_LIMITS.command_chars),
    timeout_s: z.number().int().min(PROBE_LIMITS.timeout_s.min).max(PROBE_LIMITS.timeout_s.max).default(PROBE_LIMITS.timeout_s.default),
  })
  .strict();
export type ProbeRequest = z.infer<typeof ProbeRequest>;

/** The most lines one `job_log` frame may carry. */
export const MAX_LOG_BATCH_LINES = 5000;

export const AgentToCoordinator = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("hello"),
    payload: z.object({
      agent_version: z.string().max(50),
      name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/),
      slots: z.number().int().min(1).max(256),
      caps: WorkerCaps,
      /** Jobs the agent still holds: running, or finished with a result not yet acknowledged. */
      running: z.array(AttemptRef).max(256),
      warm: WarmCache.default({ envs: [], repos: [] }),
      /** The agent reads frames carrying several messages (see `FRAME_LIMITS`). */
      batch_frames: z.boolean().default(false),
      /**
       * The agent is draining (an upgrade waiting for its jobs, a SIGTERM): it keeps its drain
       * across a reconnect, which otherwise ends the agent's own drain, and is assigned nothing.
       */
      draining: z.boolean().optional(),
    }),
  }),
  /** The agent's warm environments and repositories changed (sent when they do, not on a timer). */
  z.object({ type: z.literal("warm_cache"), payload: WarmCache }),
  z.object({ type: z.literal("heartbeat"), payload: z.object({}) }),
  /**
   * The agent took an assignment and is preparing it (fetching inputs and code, building its
   * environment): the coordinator's start bound (START_TIMEOUT_S) gives way to its preparation
   * bound (PREPARE_TIMEOUT_S).
   */
  z.object({ type: z.literal("job_accepted"), payload: AttemptRef }),
  /** `resolved`: for repo jobs, the commits and image the attempt runs. */
  z.object({ type: z.literal("job_started"), payload: AttemptRef.extend({ resolved: ResolvedCommits.optional() }) }),
  z.object({
    type: z.literal("job_log"),
    payload: AttemptRef.extend({
      seq: z.number().int().min(0).max(LOG_LIMITS.seq_max),
      lines: z
        .array(LogLine)
        .min(1)
        .max(MAX_LOG_BATCH_LINES)
        .refine((lines) => lines.reduce((n, l) => n + l.text.length, 0) <= LOG_LIMITS.batch_chars, `at most ${LOG_LIMITS.batch_chars} characters of text in one job_log`),
    }),
  }),
  z.object({
    type: z.literal("job_result"),
    payload: AttemptRef.extend({
      exit_code: ExitCode.nullable(),
      failure_reason: FailureReason.nullable(),
      message: z.string().max(4000).nullable(),
      resolved: ResolvedCommits.optional(),
      /** What the attempt's container consumed, read from its cgroup; absent from agents that predate it. */
      usage: AttemptUsage.optional(),
    }),
  }),
  /** The agent is shutting down: it takes no new jobs and finishes those it has. */
  z.object({ type: z.literal("draining"), payload: z.object({}) }),
  z.object({
    type: z.literal("probe_result"),
    payload: z.object({
      probe_id: z.string().max(64),
      status: z.enum(["completed", "failed", "refused", "timeout"]),
      exit_code: ExitCode.nullable(),
      output: z.string().max(PROBE_LIMITS.output_bytes * 2),
      truncated: z.boolean(),
      error: z.string().max(2000).nullable(),
    }),
  }),
  /** How an upgrade the coordinator ordered goes on this agent; a rollback is reported after the next hello. */
  z.object({ type: z.literal("upgrade_status"), payload: UpgradeReport }),
]);
export type AgentToCoordinator = z.infer<typeof AgentToCoordinator>;

/**
 * The decrypted values of the secrets a job asks for as environment variables, by variable:
 * for one attempt's container only. Never stored, logged or written to the job's folder; the
 * agent masks each value in the output it sends back. A value is at most the vault's 16 KiB.
 */
const SecretEnvValues = z
  .record(EnvName, z.string().max(16 * 1024))
  .refine((e) => Object.keys(e).length <= JOB_LIMITS.secret_env.max, `at most ${JOB_LIMITS.secret_env.max} secrets`);

export const CoordinatorToAgent = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("hello_ack"),
    payload: z.object({
      worker_id: z.string(),
      heartbeat_interval_s: z.number().positive(),
      draining: z.boolean(),
      /** The coordinator reads frames carrying several messages; the agent may send them from now on. */
      batch_frames: z.boolean().default(false),
    }),
  }),
  z.object({ type: z.literal("heartbeat_ack"), payload: z.object({}) }),
  z.object({
    type: z.literal("assign_job"),
    payload: AttemptRef.extend({
      spec: JobSpec,
      gpu_indices: z.array(z.number().int().min(0)),
      inputs: z.array(InputDownload).default([]),
      /** Decrypted project secrets for a repo job's fetches: for this attempt only, never logged. */
      credentials: RepoCredentials.optional(),
      /** `spec.secrets` opened from the job's own project; a secret it names but this lacks could not be opened (deleted since submit). */
      secret_env: SecretEnvValues.optional(),
      sandbox: AttemptSandbox.optional(),
      /** The job's log cap (LOG_MAX_BYTES): past it the agent counts lines instead of sending them; absent, the agent's own. */
      log_max_bytes: z.number().int().min(0).max(LOG_LIMITS.max_bytes).optional(),
    }),
  }),
  z.object({
    type: z.literal("cancel_job"),
    payload: AttemptRef.extend({ reason: z.enum(["user", "timeout", "stale"]) }),
  }),
  z.object({ type: z.literal("result_ack"), payload: AttemptRef }),
  /**
   * After a reconnect, once per attempt the agent reported and still holds: the last log batch
   * stored (-1: none). The agent re-sends its later batches, then the newer ones and the result.
   */
  z.object({ type: z.literal("log_resume"), payload: AttemptRef.extend({ after_seq: z.number().int().min(-1).max(LOG_LIMITS.seq_max) }) }),
  z.object({ type: z.literal("drain"), payload: z.object({}) }),
  /** An operator's maintenance command, run over SSH on the agent's configured host if its allowlist permits. */
  z.object({ type: z.literal("probe"), payload: ProbeRequest.extend({ probe_id: z.string().max(64) }) }),
  z.object({ type: z.literal("error"), payload: z.object({ code: z.string(), message: z.string() }) }),
  /** The operator upgraded the pool (POST /v1/pools/:pool/upgrade): run this bundle instead. */
  z.object({ type: z.literal("upgrade"), payload: UpgradeOrder }),
]);
export type CoordinatorToAgent = z.infer<typeof CoordinatorToAgent>;

export type MessageOf<U extends { type: string }, T extends U["type"]> = Extract<U, { type: T }>;
