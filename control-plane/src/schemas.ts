import { z } from "@hono/zod-openapi";
import { ROLES } from "./auth/roles.ts";
import { MAX_SECRET_CHARS } from "./secrets/vault.ts";
import {
  ArtifactComplete as ArtifactCompleteRequest,
  ArtifactPrepare as ArtifactPrepareRequest,
  DatasetCreate as DatasetCreateRequest,
  ErrorCode,
  FailureReason,
  GpuDevice,
  JobLimits,
  JobRequest as JobRequestSchema,
  JobRequirements,
  JobSpec,
  JobStatus,
  Labels,
  LogStream,
  PartUrl,
  PartUrlsRequest as PartUrlsRequestSchema,
  PoolName,
  PoolSandbox as PoolSandboxSchema,
  ProjectName,
  Runtime,
  ProbeRequest as ProbeRequestSchema,
  ResolvedCommits as ResolvedCommitsSchema,
  WarmCache as WarmCacheSchema,
  AttemptUsage as AttemptUsageSchema,
  DependencyCondition,
  RetryPolicy as RetryPolicySchema,
  WORKFLOW_LIMITS,
  Upload as UploadSchema,
  UploadComplete as UploadCompleteRequest,
  WorkerId as WorkerIdSchema,
  AgentVersion as AgentVersionSchema,
  UpgradeState as UpgradeStateSchema,
} from "../../protocol/index.ts";

/*
 * The API's request and response bodies, each a named component of `/openapi.json`. Request
 * schemas are the protocol's own (the routes validate with exactly these objects); response
 * schemas type the handlers, so a view that drifts from its schema does not compile.
 */

/**
 * A protocol schema as a named component. The copy shares the schema's definition (so it
 * validates exactly alike) and is made after `@hono/zod-openapi` extended zod, which a schema
 * the protocol module built earlier may not be.
 */
const named = <S extends z.ZodType>(schema: S, id: string, meta: Parameters<S["openapi"]>[1] = {}) => schema.clone().openapi(id, meta) as S;

const Count = z.number().int();
const Role = z.enum(ROLES);
const Timestamp = z.iso.datetime().openapi({ example: "2026-11-22T10:00:00.000Z" });
const Id = (example: string) => z.string().openapi({ example });

export const ErrorBody = z
  .object({
    error: z.object({
      code: z.enum(Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]]),
      message: z.string().openapi({ example: "limits.timeout_s: Too small: expected number to be >=1" }),
      field: z.string().optional().openapi({ description: "the request field at fault, as a dotted path or a header name", example: "limits.timeout_s" }),
      quota: z.string().optional().openapi({ description: "429/413 from a quota: which one", example: "max_queued_jobs" }),
      limit: z.number().optional().openapi({ description: "the quota's or rate limit's value" }),
      usage: z.number().optional().openapi({ description: "what the project holds now, against the quota" }),
    }),
  })
  .openapi("Error");

export const JobRequest = named(JobRequestSchema, "JobRequest", {
  description: "A job as a user submits it; every field but the kind and its task has a default.",
  example: { kind: "python", python: { script: "print(6*7)" }, limits: { timeout_s: 600 } },
});

const ResolvedCommits = named(ResolvedCommitsSchema, "ResolvedCommits", {
  description: "What a job's latest attempt ran, as its agent resolved it: a repo job's commits and environment image; a command job's image pinned by digest (`name@sha256:…`, or the image id of one only built locally).",
});
const WarmCache = named(WarmCacheSchema, "WarmCache", { description: "Keys of the environments and repositories a worker has cached, most recently used first." });

export const AttemptUsage = named(AttemptUsageSchema, "AttemptUsage", {
  description: "What an attempt consumed, read from its container's cgroup: CPU seconds, peak memory (MiB), GPU seconds (the GPUs it held × its run) and wall time (start to exit). A job's is the sum over its attempts (peak memory: the largest).",
});
const RetryPolicy = named(RetryPolicySchema, "RetryPolicy", {
  description: `Which failed attempts are tried again: outcomes in \`on\` (and, for exit_code, only \`exit_codes\` if given), at most \`max\` retries (default ${WORKFLOW_LIMITS.retry_max.default}, at most ${WORKFLOW_LIMITS.retry_max.max}), each after \`backoff_s\` (default ${WORKFLOW_LIMITS.backoff_s.default}) doubled per retry, at most ${WORKFLOW_LIMITS.backoff_cap_s} s.`,
});
const DependencyView = z
  .object({ job: z.string().openapi({ description: "a job id, or an array id (every task of it)" }), condition: DependencyCondition.clone() })
  .openapi("Dependency");

export const Job = z
  .object({
    id: Id("j_01jd2x7k8m9n0p1q2r3s4t5v6w"),
    kind: z.string().openapi({ description: "the job's kind: python, command or repo", example: "python" }),
    project: z.string(),
    name: z.string().nullable(),
    tags: z.array(z.string()).openapi({ description: "`key=value` tags" }),
    submitted_by: z.string().openapi({ description: "the submitting user's name, or `admin`" }),
    pool: PoolName,
    status: JobStatus,
    priority: z.number().int(),
    max_retries: z.number().int(),
    attempt: z.number().int().openapi({ description: "the latest attempt; 0 until the job is first assigned" }),
    worker_id: z.string().nullable(),
    exit_code: z.number().int().nullable(),
    failure_reason: FailureReason.nullable(),
    failure_message: z.string().nullable(),
    pending_reason: z.string().nullable().openapi({
      description:
        "why a queued job waits: for a dependency, a retry's backoff, a project quota, a runtime or network no online worker offers, requirements no online worker can ever fit (saying what it needs and what the largest worker has), or a free slot; null once it left the queue",
      example: "no online worker can ever fit it: needs 102400 MiB memory, the largest online worker has 24576 MiB",
    }),
    limits: JobLimits,
    requirements: JobRequirements,
    created_at: Timestamp,
    assigned_at: Timestamp.nullable(),
    started_at: Timestamp.nullable(),
    finished_at: Timestamp.nullable(),
    resolved: ResolvedCommits.nullable(),
    array_id: z.string().nullable().openapi({ description: "the array this job is a task of (GET /v1/arrays/:id)" }),
    array_index: z.number().int().nullable().openapi({ description: "its index in the array: GRIDX_ARRAY_INDEX" }),
    rerun_of: z.string().nullable().openapi({ description: "the job this one is a rerun of" }),
    schedule_id: z.string().nullable().openapi({ description: "the schedule that submitted it" }),
    depends_on: z.array(DependencyView),
    retry: RetryPolicy.nullable(),
    queue_ttl_s: z.number().int().nullable(),
    retry_at: Timestamp.nullable().openapi({ description: "while a retry waits out its backoff: when it is queued again" }),
  })
  .openapi("Job");

export const Artifact = z
  .object({ name: z.string(), size: z.number().int(), sha256: z.string(), attempt: z.number().int(), created_at: Timestamp })
  .openapi("Artifact");

export const AttemptView = z
  .object({
    attempt: z.number().int(),
    worker_id: z.string(),
    worker_name: z.string().nullable(),
    status: z.enum(["assigned", "running", "canceling", "finished", "lost"]),
    queued_at: Timestamp,
    assigned_at: Timestamp,
    started_at: Timestamp.nullable(),
    finished_at: Timestamp.nullable(),
    exit_code: z.number().int().nullable(),
    failure_reason: z.string().nullable(),
    usage: AttemptUsage.nullable(),
  })
  .openapi("Attempt");

const Relative = z
  .object({ job: z.string(), condition: DependencyCondition.clone(), status: JobStatus.clone().nullable().openapi({ description: "for an array: null" }) })
  .openapi("RelatedJob");

export const JobDetail = Job.extend({
  spec: JobSpec,
  stdout: z.string().openapi({ description: "the last 64 KiB of the latest attempt's stdout" }),
  stderr: z.string().openapi({ description: "the last 64 KiB of the latest attempt's stderr" }),
  artifacts: z.array(Artifact),
  attempts: z.array(AttemptView).openapi({ description: "every attempt, first to latest, each with its outcome and usage" }),
  usage: AttemptUsage.nullable().openapi({ description: "summed over its attempts; null until one reported" }),
  parents: z.array(Relative).openapi({ description: "the jobs and arrays it depends on, with their status" }),
  children: z.array(Relative).openapi({ description: "the jobs that depend on it (or on its array), at most 1000" }),
}).openapi("JobDetail");

export const JobPage = z.object({ jobs: z.array(Job), next_cursor: z.string().nullable() }).openapi("JobPage");

export const StoredLogLine = z
  .object({ attempt: z.number().int(), seq: z.number().int(), stream: LogStream, ts: z.number().int().openapi({ description: "milliseconds since the epoch" }), text: z.string() })
  .openapi("LogLine");

export const LogPage = z
  .object({
    lines: z.array(StoredLogLine),
    next_cursor: z.string().nullable(),
    more: z.boolean().openapi({ description: "whether lines were stored after this page when it was read (a running job may add more either way)" }),
    status: JobStatus,
  })
  .openapi("LogPage");

export const ArtifactList = z.object({ artifacts: z.array(Artifact) }).openapi("ArtifactList");

export const Worker = z
  .object({
    id: Id("w_01jd2x7k8m9n0p1q2r3s4t5v6w"),
    name: z.string(),
    pool: PoolName,
    status: z.enum(["online", "offline", "draining"]),
    caps: z.object({
      cpu_cores: z.number(),
      memory_mb: z.number().int(),
      gpus: z.number().int(),
      gpu_devices: z.array(GpuDevice),
      nvidia_runtime: z.boolean(),
      labels: Labels,
      os: z.string(),
      arch: z.string(),
      wsl: z.boolean(),
      runtimes: z.array(Runtime).openapi({ description: "Runtimes the worker's Docker engine has registered: runc, and gvisor (runsc) where installed." }),
      egress: z.boolean().openapi({ description: "Whether the agent keeps the filtered network that egress jobs and builds use." }),
      ports: z.boolean().openapi({ description: "Whether the agent serves jobs' declared ports (it has a static busybox to relay with); jobs with ports go only to such workers." }),
    }),
    agent_version: z.string(),
    outdated: z.boolean().openapi({ description: "Whether its agent is older than AGENT_RECOMMENDED_VERSION (it still runs jobs; AGENT_MIN_VERSION is where it is refused)." }),
    slots: z.number().int(),
    running: z.number().int(),
    warm: WarmCache,
    connected_at: Timestamp,
    last_seen: Timestamp,
  })
  .openapi("Worker");

export const PoolSandbox = named(PoolSandboxSchema, "PoolSandbox", {
  description: "A pool's sandbox policy: the runtimes its jobs may use and get by default, whether they may reach the outside world, what builds may reach, and which images command jobs may pull.",
  example: { default_runtime: "gvisor", runtimes: ["gvisor"], egress: true, egress_allow: ["pypi.org", "203.0.113.0/24"], build_network: "egress", images: ["ghcr.io/acme/*"] },
});
export const PoolSandboxView = z
  .object({
    pool: PoolName,
    sandbox: PoolSandbox,
    updated_at: Timestamp.nullable().openapi({ description: "null while the pool has the defaults" }),
    updated_by: z.string().nullable(),
  })
  .openapi("PoolSandboxView");

export const WorkerList = z.object({ workers: z.array(Worker) }).openapi("WorkerList");

const WorkerAttempt = z.object({
  job_id: Id("j_01jd2x7k8m9n0p1q2r3s4t5v6w"),
  attempt: z.number().int(),
  status: z.enum(["assigned", "running", "canceling", "finished", "lost"]),
  project: z.string(),
  assigned_at: Timestamp,
  started_at: Timestamp.nullable(),
  finished_at: Timestamp.nullable(),
  exit_code: z.number().int().nullable(),
  failure_reason: z.string().nullable(),
});
export const WorkerDetail = Worker.extend({
  holding: z.array(WorkerAttempt).openapi({ description: "The attempts it holds now (assigned, running, or being canceled), of the projects the caller reads." }),
  recent_attempts: z.array(WorkerAttempt).openapi({ description: "Its latest attempts, newest first, of the projects the caller reads." }),
}).openapi("WorkerDetail");

export const ProbeRequest = named(ProbeRequestSchema, "ProbeRequest");
export const Probe = z
  .object({
    id: z.string(),
    worker_id: z.string(),
    command: z.string(),
    requested_by: z.string(),
    status: z.enum(["pending", "completed", "failed", "refused", "timeout"]),
    exit_code: z.number().int().nullable(),
    output: z.string().nullable(),
    truncated: z.boolean(),
    error: z.string().nullable(),
    created_at: Timestamp,
    finished_at: Timestamp.nullable(),
  })
  .openapi("Probe");
export const ProbeList = z.object({ probes: z.array(Probe) }).openapi("ProbeList");

export const DatasetCreate = named(DatasetCreateRequest, "DatasetCreate");
export const Upload = named(UploadSchema, "Upload");
export const Dataset = z
  .object({
    id: Id("ds_01jd2x7k8m9n0p1q2r3s4t5v6w"),
    project: z.string(),
    name: z.string(),
    size: z.number().int(),
    sha256: z.string().nullable(),
    status: z.enum(["uploading", "ready"]),
    multipart: z.boolean(),
    part_size: z.number().int().nullable(),
    created_at: Timestamp,
    completed_at: Timestamp.nullable(),
  })
  .openapi("Dataset");
export const DatasetCreated = Dataset.extend({ upload: Upload }).openapi("DatasetCreated");
export const DatasetPage = z.object({ datasets: z.array(Dataset), next_cursor: z.string().nullable() }).openapi("DatasetPage");
export const PartUrlsRequest = named(PartUrlsRequestSchema, "PartUrlsRequest");
export const PartUrls = z.object({ parts: z.array(PartUrl), expires_at: Timestamp }).openapi("PartUrls");
export const UploadComplete = named(UploadCompleteRequest, "UploadComplete");

const TokenName = z.string().min(1, "name is empty").max(100);
/** Bounds on an API token's lifetime: a minute to five years; none given, it does not expire. */
export const TOKEN_EXPIRY_S = { min: 60, max: 5 * 365 * 24 * 3600 } as const;
export const UserName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/, "letters, digits, '.', '_', '@' or '-', 1 to 100 characters")
  // Names the audit log and submitted_by use for others, and the prefix that says "an id".
  .refine((n) => n !== "admin" && !n.startsWith("u_") && !n.startsWith("tok_"), "admin, and names starting u_ or tok_, are reserved")
  .openapi({ example: "ada" });
export const AgentTokenRequest = z.object({ pool: PoolName.default("default"), name: TokenName }).strict().openapi("AgentTokenRequest");
export const ApiTokenRequest = z
  .object({
    name: TokenName,
    user: z.string().min(1).max(100).optional().openapi({ description: "the user (id or name) the token acts as; a user's own when a user asks, required from the admin token" }),
    expires_in_s: z.number().int().min(TOKEN_EXPIRY_S.min).max(TOKEN_EXPIRY_S.max).optional().openapi({ description: `seconds until the token stops working (${TOKEN_EXPIRY_S.min} to ${TOKEN_EXPIRY_S.max}); never, if absent` }),
  })
  .strict()
  .openapi("ApiTokenRequest");
export const IssuedToken = z
  .object({
    id: z.string(),
    token: z.string().openapi({ description: "the secret; shown only in this answer" }),
    kind: z.enum(["agent", "user"]),
    name: z.string(),
    pool: z.string().nullable(),
    user_id: z.string().nullable(),
    created_at: Timestamp,
    expires_at: Timestamp.nullable(),
  })
  .openapi("IssuedToken");
export const TokenInfo = z
  .object({
    id: z.string(),
    kind: z.enum(["agent", "user"]),
    name: z.string(),
    pool: z.string().nullable(),
    user_id: z.string().nullable(),
    user: z.string().nullable().openapi({ description: "the user's name, for API tokens" }),
    created_at: Timestamp,
    last_used_at: Timestamp.nullable().openapi({ description: "updated at most once a minute" }),
    expires_at: Timestamp.nullable(),
  })
  .openapi("Token");
export const TokenList = z.object({ tokens: z.array(TokenInfo) }).openapi("TokenList");
export const SessionInfo = z
  .object({
    id: Id("ses_01jd2x7k8m9n0p1q2r3s4t5v6w"),
    user: z.string().openapi({ description: "the user's name, or `admin` for a session opened with the admin token" }),
    user_id: z.string().nullable(),
    created_at: Timestamp,
    last_used_at: Timestamp.nullable().openapi({ description: "updated at most once a minute" }),
    expires_at: Timestamp.openapi({ description: "never later than the expiry of the token it was opened with" }),
    ip: z.string().nullable().openapi({ description: "the address it was opened from" }),
    user_agent: z.string().nullable(),
    current: z.boolean().openapi({ description: "true for the session this request was made with" }),
  })
  .openapi("Session");
export const SessionList = z.object({ sessions: z.array(SessionInfo) }).openapi("SessionList");

export const UserCreate = z.object({ name: UserName }).strict().openapi("UserCreate");
export const User = z.object({ id: Id("u_01jd2x7k8m9n0p1q2r3s4t5v6w"), name: z.string(), created_at: Timestamp }).openapi("User");
export const UserList = z.object({ users: z.array(User) }).openapi("UserList");
export const Me = z
  .object({
    kind: z.enum(["admin", "user"]),
    user: User.nullable(),
    projects: z.array(z.object({ project: z.string(), role: Role })),
  })
  .openapi("Me");

export const Quotas = z
  .object({
    max_running_jobs: z.number().int().min(0).max(1_000_000).optional().openapi({ description: "jobs assigned or running at once; more wait in `queued`" }),
    max_queued_jobs: z.number().int().min(0).max(10_000_000).optional().openapi({ description: "jobs waiting at once; a submit past it is a 429" }),
    max_gpus: z.number().int().min(0).max(100_000).optional().openapi({ description: "GPUs in use at once; more wait in `queued`" }),
    max_dataset_bytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional().openapi({ description: "bytes of datasets held; an upload past it is a 413" }),
  })
  .strict()
  .openapi("Quotas", { description: "Limits on what a project holds at once; an absent key is no limit." });
export const ProjectWeight = z.number().min(0.01).max(1000).openapi({ description: "its share of contested capacity under fair share, relative to other projects' (default 1)" });
const RetentionDaysValue = z.number().int().min(0).max(36500);
export const RetentionPatch = z
  .object({
    logs_days: RetentionDaysValue.optional().openapi({ description: "days a finished job's log (and its archived .gridx/job.log) is kept" }),
    artifacts_days: RetentionDaysValue.optional().openapi({ description: "days a finished job's artifacts are kept" }),
    jobs_days: RetentionDaysValue.optional().openapi({ description: "days a finished job is kept at all (with everything it left)" }),
  })
  .strict()
  .openapi("RetentionPatch", { description: "Days the project keeps what its finished jobs leave; 0 is forever, an absent key the RETENTION_* default." });
export const ProjectRetention = z
  .object({
    logs_days: Count,
    artifacts_days: Count,
    jobs_days: Count,
    defaults: z.array(z.enum(["logs_days", "artifacts_days", "jobs_days"])).openapi({ description: "the keys that are the control plane's defaults, not the project's own" }),
  })
  .openapi("ProjectRetention", { description: "How long the project keeps what its finished jobs leave, in days (0: forever)." });
export const ProjectCreate = z.object({ name: ProjectName, quotas: Quotas.default({}), weight: ProjectWeight.default(1) }).strict().openapi("ProjectCreate");
export const ProjectPatch = z
  .object({ quotas: Quotas.optional(), weight: ProjectWeight.optional().openapi({ description: "admin only" }), retention: RetentionPatch.optional() })
  .strict()
  .openapi("ProjectPatch", { description: "`quotas` and `retention` each replace the project's as a whole; `weight` is the admin's to set." });
export const Project = z
  .object({
    name: z.string(),
    quotas: Quotas,
    weight: z.number(),
    usage: z.object({ running_jobs: Count, queued_jobs: Count, gpus: Count, dataset_bytes: Count }).openapi("ProjectUsage"),
    retention: ProjectRetention,
    role: z.enum(["admin", "owner", "member", "viewer"]).nullable().openapi({ description: "the caller's standing in the project" }),
    created_at: Timestamp,
  })
  .openapi("Project");
export const ProjectList = z.object({ projects: z.array(Project) }).openapi("ProjectList");
export const MemberPut = z.object({ role: Role }).strict().openapi("MemberPut");
export const Member = z.object({ user_id: z.string(), user: z.string(), role: Role, added_at: Timestamp }).openapi("Member");
export const MemberList = z.object({ members: z.array(Member) }).openapi("MemberList");

export const AuditEvent = z
  .object({
    id: z.string(),
    at: Timestamp,
    actor: z.string().openapi({ description: "a user's name, `admin`, or an agent token's id" }),
    action: z.string().openapi({ example: "member.put" }),
    project: z.string().nullable(),
    target: z.string().nullable(),
    detail: z.record(z.string(), z.unknown()),
    ip: z.string().nullable(),
  })
  .openapi("AuditEvent");
export const AuditPage = z.object({ events: z.array(AuditEvent), next_cursor: z.string().nullable() }).openapi("AuditPage");

export const Health = z
  .object({
    ok: z.boolean(),
    protocol_version: z.number().int(),
    checks: z
      .array(z.object({ name: z.enum(["settings", "admin_token", "secrets_key", "s3", "r2_binding", "migrations"]), ok: z.boolean(), message: z.string() }))
      .optional()
      .openapi({ description: "With deep=1: each check, and what to fix when it failed." }),
  })
  .openapi("Health");

/** Completion names the multipart upload each big artifact used. */
export const ArtifactComplete = ArtifactCompleteRequest.extend({
  artifacts: z
    .array(ArtifactCompleteRequest.shape.artifacts.element.extend({ upload_id: z.string().max(1024).nullable().optional() }))
    .max(1000),
}).openapi("ArtifactComplete");
export const ArtifactPrepare = named(ArtifactPrepareRequest, "ArtifactPrepare");
export const ArtifactUploads = z
  .object({ uploads: z.array(z.object({ name: z.string(), upload: Upload, upload_id: z.string().nullable() })) })
  .openapi("ArtifactUploads");
export const ArtifactsRecorded = z.object({ recorded: z.number().int() }).openapi("ArtifactsRecorded");

export const SecretValue = z
  .object({ value: z.string().min(1, "value is empty").max(MAX_SECRET_CHARS, `value is at most ${MAX_SECRET_CHARS} characters`) })
  .strict()
  .openapi("SecretValue", { description: "A token (`user:token` or a bare token, for https) or a private key (ssh)." });
export const Secret = z.object({ project: z.string(), name: z.string(), created_at: Timestamp, updated_at: Timestamp }).openapi("Secret");
export const SecretList = z.object({ secrets: z.array(Secret) }).openapi("SecretList");

export const AttemptList = z.object({ attempts: z.array(AttemptView) }).openapi("AttemptList");

const StatusCounts = z.object({ queued: Count, assigned: Count, running: Count, completed: Count, failed: Count, canceled: Count }).openapi("StatusCounts");
export const ArraySummary = z
  .object({
    id: Id("a_01jd2x7k8m9n0p1q2r3s4t5v6w"),
    project: z.string(),
    pool: z.string(),
    name: z.string().nullable(),
    count: Count,
    submitted_by: z.string(),
    created_at: Timestamp,
    status: JobStatus.clone().openapi({ description: "running while any task is unfinished (queued while none started); then failed if any task failed, canceled if any was canceled, else completed" }),
    counts: StatusCounts,
    failed_indices: z.array(Count).openapi({ description: "indices of failed tasks, lowest first, at most 1000" }),
    first_job: z.string().openapi({ description: "the id of task 0" }),
  })
  .openapi("ArraySummary");

export const BatchRequest = z
  .object({
    jobs: z
      .array(z.unknown().openapi({ type: "object", description: "a JobRequest; `$N` in depends_on[].job or inputs[].artifact.job names item N of this batch" }))
      .min(1, "jobs is empty")
      .max(WORKFLOW_LIMITS.batch_jobs.max, `at most ${WORKFLOW_LIMITS.batch_jobs.max} jobs in a batch`),
  })
  .strict()
  .openapi("BatchRequest");
export const BatchResult = z
  .object({
    results: z.array(
      z
        .object({
          index: Count,
          status: z.number().int().openapi({ description: "what this item alone would have answered: 201, 200 (an earlier request with its idempotency key), or the 4xx" }),
          job: Job.optional(),
          error: ErrorBody.shape.error.optional(),
        })
        .openapi("BatchItemResult"),
    ),
    submitted: Count,
    refused: Count,
  })
  .openapi("BatchResult");

export const PoolList = z
  .object({
    pools: z.array(
      z
        .object({
          pool: z.string(),
          queued: Count,
          assigned: Count,
          running: Count,
          workers: z.object({ online: Count, draining: Count, offline: Count }),
          slots: z.object({ total: Count, in_use: Count }),
          policy: z.string(),
        })
        .openapi("PoolSummary"),
    ),
  })
  .openapi("PoolList");

export const PoolStats = z
  .object({
    pool: z.string(),
    from: Timestamp,
    to: Timestamp,
    bucket_s: z.number(),
    finished: Count,
    started: Count,
    median_wait_ms: z.number().nullable(),
    usage: z
      .object({ attempts: Count, cpu_s: z.number(), gpu_s: z.number(), wall_s: z.number() })
      .openapi({ description: "summed over the attempts that finished in the window and reported usage" }),
    series: z.array(
      z
        .object({ start: Timestamp, completed: Count, failed: Count, canceled: Count, started: Count, median_wait_ms: z.number().nullable() })
        .openapi("PoolBucket"),
    ),
    projects: z
      .array(
        z
          .object({
            project: z.string().openapi({ description: 'A project the caller can read, or "other": every project it cannot, added together.' }),
            weight: z.number().openapi({ description: "Its share of contested capacity relative to other projects' (for other: their sum)." }),
            share: z.number().min(0).max(1).openapi({ description: "Its fraction of the pool's decayed usage." }),
            usage_slot_s: z.number().openapi({ description: "Its decayed usage of this pool: slot-seconds, halving every FAIR_SHARE_HALF_LIFE_S." }),
            running: Count.openapi({ description: "Slots its attempts hold in this pool now." }),
            queued: Count,
          })
          .openapi("PoolProjectShare"),
      )
      .openapi({ description: "Fair share: each project with usage, running or queued jobs in this pool, most usage first." }),
  })
  .openapi("PoolStats");

export const Schedule = z
  .object({
    id: Id("sch_01jd2x7k8m9n0p1q2r3s4t5v6w"),
    project: z.string(),
    name: z.string(),
    cron: z.string().openapi({ example: "*/15 9-17 * * mon-fri" }),
    timezone: z.string().openapi({ example: "Europe/Berlin" }),
    job: z.record(z.string(), z.unknown()).openapi({ description: "the JobRequest each tick submits, as it was given" }),
    overlap: z.enum(["skip", "allow"]),
    paused: z.boolean(),
    next_run_at: Timestamp.nullable().openapi({ description: "the next tick; null while paused" }),
    last_run_at: Timestamp.nullable().openapi({ description: "the latest tick that ran (whatever its outcome)" }),
    submitted_by: z.string().openapi({ description: "its jobs are submitted as this user, with the memberships they hold at each tick" }),
    created_by: z.string(),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .openapi("Schedule");
export const SchedulePage = z.object({ schedules: z.array(Schedule), next_cursor: z.string().nullable() }).openapi("SchedulePage");
export const ScheduleRun = z
  .object({
    tick_at: Timestamp,
    outcome: z.enum(["submitted", "skipped", "refused"]),
    job_id: z.string().nullable(),
    message: z.string().nullable().openapi({ description: "why it was skipped or refused; missed earlier ticks it stands for" }),
    at: Timestamp,
  })
  .openapi("ScheduleRun");
export const ScheduleRunPage = z.object({ runs: z.array(ScheduleRun), next_cursor: z.string().nullable() }).openapi("ScheduleRunPage");

export const AgentBundleCreate = z
  .object({
    version: AgentVersionSchema,
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "lower-case hex SHA-256 of the bundle file"),
    size: z.number().int().min(1),
  })
  .strict()
  .openapi("AgentBundleCreate");
export const AgentBundle = z
  .object({
    version: z.string(),
    sha256: z.string(),
    size: z.number().int(),
    status: z.enum(["uploading", "ready"]),
    created_by: z.string(),
    created_at: Timestamp,
    ready_at: Timestamp.nullable(),
  })
  .openapi("AgentBundle");
export const AgentBundleCreated = AgentBundle.extend({ upload: z.object({ method: z.literal("PUT"), url: z.string(), expires_at: Timestamp }) }).openapi("AgentBundleCreated");
export const AgentBundleList = z.object({ bundles: z.array(AgentBundle) }).openapi("AgentBundleList");
export const PoolUpgradeRequest = z.object({ version: AgentVersionSchema }).strict().openapi("PoolUpgradeRequest");
export const PoolUpgrade = z
  .object({
    pool: z.string(),
    version: z.string().nullable().openapi({ description: "The version the pool's agents are to run; null: no upgrade was asked for." }),
    requested_by: z.string().nullable(),
    requested_at: Timestamp.nullable(),
    workers: z.array(
      z.object({
        worker_id: z.string(),
        name: z.string(),
        online: z.boolean(),
        version: z.string().openapi({ description: "What its agent said hello with last." }),
        from: z.string().nullable(),
        to: z.string().nullable(),
        state: UpgradeStateSchema.nullable().openapi({ description: "Null: never ordered (offline since the request, or no request)." }),
        reason: z.string().nullable(),
        updated_at: Timestamp.nullable(),
      }),
    ),
  })
  .openapi("PoolUpgrade");

export const BroadcastRequest = z
  .object({
    job: z
      .record(z.string(), z.unknown())
      .openapi({ description: "a JobRequest, as POST /v1/jobs takes it, run once on each worker; its pool is the path's (a `pool` given must equal it), and it names no `worker` or `array`" }),
    workers: z
      .array(WorkerIdSchema)
      .min(1, "workers is empty; leave it out for every online worker")
      .optional()
      .openapi({ description: "only these workers of the pool, each online; every online, undrained worker if absent" }),
  })
  .strict()
  .openapi("BroadcastRequest");
export const BroadcastCreated = z
  .object({
    id: Id("b_01jd2x7k8m9n0p1q2r3s4t5v6w"),
    jobs: z.array(z.object({ worker: z.string(), job_id: z.string() })).openapi({ description: "one job per worker, in the order of `workers` (or of the workers' names)" }),
  })
  .openapi("BroadcastCreated");
export const Broadcast = z
  .object({
    id: Id("b_01jd2x7k8m9n0p1q2r3s4t5v6w"),
    project: z.string(),
    pool: z.string(),
    name: z.string().nullable(),
    submitted_by: z.string(),
    created_at: Timestamp,
    workers: z.array(
      z.object({
        worker_id: z.string(),
        worker_name: z.string().nullable().openapi({ description: "null once the worker was forgotten (DELETE /v1/workers/:id)" }),
        job_id: z.string(),
        status: JobStatus,
        exit_code: z.number().int().nullable(),
        failure_reason: z.string().nullable(),
        finished_at: Timestamp.nullable(),
      }),
    ),
    counts: StatusCounts,
    done: z.boolean().openapi({ description: "every job has ended (completed, failed or canceled)" }),
  })
  .openapi("Broadcast");
