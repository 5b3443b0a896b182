import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import type { AttemptUsage, JobRequest, PoolSandbox, ResolvedCommits, WarmCache } from "../../../protocol/index.ts";

/** API and agent tokens. Only a SHA-256 of the token is stored. */
export const tokens = sqliteTable(
  "tokens",
  {
    id: text("id").primaryKey(),
    kind: text("kind", { enum: ["agent", "user"] }).notNull(),
    /** Agent tokens are bound to one pool. */
    pool: text("pool"),
    name: text("name").notNull(),
    hash: text("hash").notNull(),
    /** API tokens act as this user; agent tokens have none. */
    userId: text("user_id"),
    createdAt: integer("created_at").notNull(),
    /** Written at most once a minute (TOKEN_TOUCH_S), so a busy token does not write on every request. */
    lastUsedAt: integer("last_used_at"),
    expiresAt: integer("expires_at"),
    revokedAt: integer("revoked_at"),
  },
  (t) => [uniqueIndex("tokens_hash").on(t.hash), index("tokens_user").on(t.userId)],
);

/** An identity: API tokens and dashboard sessions act as a user. */
export const users = sqliteTable(
  "users",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [uniqueIndex("users_name").on(t.name)],
);

/** What a project may hold at once; an absent key is no limit. */
export interface Quotas {
  max_running_jobs?: number;
  max_queued_jobs?: number;
  max_gpus?: number;
  max_dataset_bytes?: number;
}

/** Days a project keeps its finished jobs' logs, artifacts and rows; an absent key is the RETENTION_* default, 0 is forever. */
export interface Retention {
  logs_days?: number;
  artifacts_days?: number;
  jobs_days?: number;
}

/** Owns jobs, datasets, artifacts, logs and secrets; its members act on them by role. */
export const projects = sqliteTable("projects", {
  name: text("name").primaryKey(),
  quotas: text("quotas", { mode: "json" }).$type<Quotas>().notNull().default({}),
  /** Its share of contested capacity under fair share, relative to other projects'. */
  weight: real("weight").notNull().default(1),
  /** How long its finished jobs' logs, artifacts and rows are kept, where not the RETENTION_* defaults. */
  retention: text("retention", { mode: "json" }).$type<Retention>().notNull().default({}),
  createdAt: integer("created_at").notNull(),
});

/** A pool's sandbox policy (protocol PoolSandbox); a pool without a row has the defaults. */
export const poolSandbox = sqliteTable("pool_sandbox", {
  pool: text("pool").primaryKey(),
  policy: text("policy", { mode: "json" }).$type<PoolSandbox>().notNull(),
  updatedAt: integer("updated_at").notNull(),
  updatedBy: text("updated_by").notNull(),
});

export const members = sqliteTable(
  "members",
  {
    project: text("project").notNull(),
    userId: text("user_id").notNull(),
    role: text("role", { enum: ["owner", "member", "viewer"] }).notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.project, t.userId] }), index("members_user").on(t.userId)],
);

/** A dashboard sign-in: the cookie holds the random id, this table its SHA-256. */
export const sessions = sqliteTable(
  "sessions",
  {
    id: text("id").primaryKey(),
    hash: text("hash").notNull(),
    /** The token signed in with: revoking it ends its sessions. For the admin token, `admin:` and a keyed digest of it (auth/tokens.ts adminSessionTag). */
    tokenId: text("token_id").notNull(),
    userId: text("user_id"),
    ip: text("ip"),
    userAgent: text("user_agent"),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    lastUsedAt: integer("last_used_at"),
    revokedAt: integer("revoked_at"),
  },
  (t) => [uniqueIndex("sessions_hash").on(t.hash), index("sessions_user").on(t.userId)],
);

/** Who did what, when and from where; never a secret's or a token's value. */
export const auditEvents = sqliteTable(
  "audit_events",
  {
    id: text("id").primaryKey(),
    at: integer("at").notNull(),
    /** A user's name, "admin", or an agent token's id. */
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    project: text("project"),
    target: text("target"),
    detail: text("detail", { mode: "json" }).$type<Record<string, unknown>>(),
    ip: text("ip"),
  },
  (t) => [index("audit_project_id").on(t.project, t.id), index("audit_actor_id").on(t.actor, t.id)],
);

/** A compute machine, identified by pool and name so a restarted agent is the same worker. */
export const workers = sqliteTable(
  "workers",
  {
    id: text("id").primaryKey(),
    pool: text("pool").notNull(),
    name: text("name").notNull(),
    online: integer("online", { mode: "boolean" }).notNull(),
    /** Who asked the worker to stop taking jobs: an operator (until undrained) or the agent itself (until it reconnects). */
    drain: text("drain", { enum: ["operator", "agent"] }),
    caps: text("caps", { mode: "json" }).notNull(),
    slots: integer("slots").notNull(),
    agentVersion: text("agent_version").notNull(),
    /** Environments and repositories the agent has cached (protocol `WarmCache`), for cache-aware scheduling. */
    warm: text("warm", { mode: "json" }).$type<WarmCache>().notNull().default({ envs: [], repos: [] }),
    tokenId: text("token_id").notNull(),
    connectedAt: integer("connected_at").notNull(),
    lastSeen: integer("last_seen").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [uniqueIndex("workers_pool_name").on(t.pool, t.name)],
);

export const jobs = sqliteTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    pool: text("pool").notNull(),
    kind: text("kind").notNull(),
    project: text("project").notNull().default("default"),
    /** Free text a user gave the job, and its `key=value` tags, for finding it again. */
    name: text("name"),
    tags: text("tags", { mode: "json" }).$type<string[]>().notNull().default([]),
    /** The submitting user's name ("admin" for the admin token). */
    submittedBy: text("submitted_by").notNull().default("admin"),
    spec: text("spec", { mode: "json" }).notNull(),
    status: text("status", { enum: ["queued", "assigned", "running", "completed", "failed", "canceled"] }).notNull(),
    priority: integer("priority").notNull(),
    maxRetries: integer("max_retries").notNull(),
    /** The number of the latest attempt; 0 while the job has never been assigned. */
    attempt: integer("attempt").notNull().default(0),
    workerId: text("worker_id"),
    exitCode: integer("exit_code"),
    failureReason: text("failure_reason"),
    failureMessage: text("failure_message"),
    idempotencyKey: text("idempotency_key"),
    requestHash: text("request_hash"),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull(),
    /** When the job last entered the queue: at creation, or when a lost attempt requeued it. */
    queuedAt: integer("queued_at").notNull(),
    assignedAt: integer("assigned_at"),
    startedAt: integer("started_at"),
    finishedAt: integer("finished_at"),
    /** For repo jobs: the commits and image the latest attempt ran, as its agent resolved them. */
    resolved: text("resolved", { mode: "json" }).$type<ResolvedCommits>(),
    /** The array it is a task of, and its index there. */
    arrayId: text("array_id"),
    arrayIndex: integer("array_index"),
    /** The job it was submitted as a copy of (`POST /v1/jobs/:id/rerun`). */
    rerunOf: text("rerun_of"),
    /** The schedule that submitted it. */
    scheduleId: text("schedule_id"),
    /**
     * Why a queued job is not yet the scheduler's to place: `deps` until every job it depends
     * on ends as its condition asks, `retry` until `not_before` (a retry's backoff). Null: ready.
     */
    hold: text("hold", { enum: ["deps", "retry"] }),
    notBefore: integer("not_before"),
    /** A ready job with queue_ttl_s fails `unschedulable` at this time if still queued. */
    expiresAt: integer("expires_at"),
    /** When retention deleted its logs, and its artifacts (the row itself goes after RETENTION_JOBS_DAYS). */
    logsPurgedAt: integer("logs_purged_at"),
    artifactsPurgedAt: integer("artifacts_purged_at"),
  },
  (t) => [
    // In the order a scheduling round reads the queue: each project's head of ready jobs (fair
    // share), and the projects with such jobs by skipping from one to the next, without sorting the whole queue.
    index("jobs_ready_by_project").on(t.pool, t.status, t.hold, t.project, sql`${t.priority} DESC`, t.id),
    index("jobs_array").on(t.arrayId, t.status),
    index("jobs_schedule").on(t.scheduleId, t.id),
    index("jobs_rerun_of").on(t.rerunOf),
    index("jobs_queue_expiry").on(t.pool, t.expiresAt).where(sql`status = 'queued' AND expires_at IS NOT NULL`),
    // Few rows: jobs waiting on their parents or on a retry's backoff.
    index("jobs_held").on(t.hold, t.notBefore).where(sql`hold IS NOT NULL`),
    index("jobs_status_id").on(t.status, t.id),
    index("jobs_project_id").on(t.project, t.id),
    index("jobs_project_status").on(t.project, t.status),
    uniqueIndex("jobs_idempotency").on(t.createdBy, t.idempotencyKey),
    // Retention's sweep: each project's finished jobs by age, and those whose logs or artifacts are still kept.
    index("jobs_finished").on(t.project, t.finishedAt).where(sql`finished_at IS NOT NULL`),
    index("jobs_logs_due").on(t.project, t.finishedAt).where(sql`finished_at IS NOT NULL AND logs_purged_at IS NULL`),
    index("jobs_artifacts_due").on(t.project, t.finishedAt).where(sql`finished_at IS NOT NULL AND artifacts_purged_at IS NULL`),
  ],
);

/** One try of a job on one worker. Only the job's latest attempt may change the job. */
export const attempts = sqliteTable(
  "attempts",
  {
    jobId: text("job_id").notNull(),
    attempt: integer("attempt").notNull(),
    workerId: text("worker_id").notNull(),
    /** `canceling`: the job ended but the agent has not yet confirmed the container is gone. */
    status: text("status", { enum: ["assigned", "running", "canceling", "finished", "lost"] }).notNull(),
    cpusMilli: integer("cpus_milli").notNull(),
    memoryMb: integer("memory_mb").notNull(),
    gpuIndices: text("gpu_indices", { mode: "json" }).$type<number[]>().notNull(),
    queuedAt: integer("queued_at").notNull(),
    assignedAt: integer("assigned_at").notNull(),
    startedAt: integer("started_at"),
    finishedAt: integer("finished_at"),
    deadlineAt: integer("deadline_at"),
    exitCode: integer("exit_code"),
    failureReason: text("failure_reason"),
    /** What its container consumed, as its agent read it from the cgroup (protocol AttemptUsage). */
    usage: text("usage", { mode: "json" }).$type<AttemptUsage>(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.attempt] }), index("attempts_worker_status").on(t.workerId, t.status), index("attempts_status_deadline").on(t.status, t.deadlineAt)],
);

/** Log lines of one stream, in the batches the agent sent them. */
export const logChunks = sqliteTable(
  "log_chunks",
  {
    jobId: text("job_id").notNull(),
    attempt: integer("attempt").notNull(),
    seq: integer("seq").notNull(),
    stream: text("stream", { enum: ["stdout", "stderr", "system", "build"] }).notNull(),
    /** `[place in batch, ts, text][]` */
    lines: text("lines", { mode: "json" }).$type<[number, number, string][]>().notNull(),
    bytes: integer("bytes").notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.attempt, t.seq, t.stream] })],
);

/** Operator maintenance probes (seed 001 `host.ssh`): every request is kept as an audit record. */
export const probes = sqliteTable(
  "probes",
  {
    id: text("id").primaryKey(),
    workerId: text("worker_id").notNull(),
    pool: text("pool").notNull(),
    command: text("command").notNull(),
    requestedBy: text("requested_by").notNull(),
    status: text("status", { enum: ["pending", "completed", "failed", "refused", "timeout"] }).notNull(),
    exitCode: integer("exit_code"),
    output: text("output"),
    truncated: integer("truncated", { mode: "boolean" }).notNull().default(false),
    error: text("error"),
    createdAt: integer("created_at").notNull(),
    finishedAt: integer("finished_at"),
  },
  (t) => [index("probes_worker").on(t.workerId, t.createdAt)],
);

/** A file uploaded once and mounted read-only into any number of jobs. */
export const datasets = sqliteTable(
  "datasets",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    project: text("project").notNull().default("default"),
    size: integer("size").notNull(),
    sha256: text("sha256"),
    status: text("status", { enum: ["uploading", "ready"] }).notNull(),
    key: text("key").notNull(),
    /** The multipart upload, while one is open. */
    uploadId: text("upload_id"),
    partSize: integer("part_size"),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull(),
    completedAt: integer("completed_at"),
  },
  (t) => [index("datasets_status_created").on(t.status, t.createdAt), index("datasets_project_id").on(t.project, t.id), index("datasets_project_name").on(t.project, t.name)],
);

/** A file a job left in /work/output, stored in R2. */
export const artifacts = sqliteTable(
  "artifacts",
  {
    jobId: text("job_id").notNull(),
    attempt: integer("attempt").notNull(),
    name: text("name").notNull(),
    size: integer("size").notNull(),
    sha256: text("sha256").notNull(),
    key: text("key").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.attempt, t.name] })],
);

/** A project's secret (repository credentials): AES-GCM under the Worker secret SECRETS_KEY; the plaintext is never stored. */
export const secrets = sqliteTable(
  "secrets",
  {
    project: text("project").notNull(),
    name: text("name").notNull(),
    /** `v1.<iv>.<ciphertext>`, base64url, sealed with the secret's project and name as associated data. */
    sealed: text("sealed").notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.project, t.name] })],
);

/**
 * Every change of a job's status, in commit order: the events stream's record and its cursor
 * (`id`), and what webhooks deliver. Written by triggers on `jobs` (migration 0008) in the same
 * transaction as the change, whichever statement made it, so no change is missed or invented.
 */
export const jobEvents = sqliteTable(
  "job_events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    jobId: text("job_id").notNull(),
    project: text("project").notNull(),
    pool: text("pool").notNull(),
    status: text("status", { enum: ["queued", "assigned", "running", "completed", "failed", "canceled"] }).notNull(),
    attempt: integer("attempt").notNull(),
    exitCode: integer("exit_code"),
    failureReason: text("failure_reason"),
    at: integer("at").notNull(),
  },
  (t) => [index("job_events_project").on(t.project, t.id), index("job_events_job").on(t.jobId, t.id)],
);

/**
 * A run of one attempt's log batches moved out of D1 into one R2 object (JSON lines of
 * StoredLine), so D1 holds a bounded window of each attempt's log and R2 the rest.
 */
export const logSegments = sqliteTable(
  "log_segments",
  {
    jobId: text("job_id").notNull(),
    attempt: integer("attempt").notNull(),
    firstSeq: integer("first_seq").notNull(),
    lastSeq: integer("last_seq").notNull(),
    key: text("key").notNull(),
    bytes: integer("bytes").notNull(),
    lines: integer("lines").notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.attempt, t.firstSeq] })],
);

/** A subscription: job events of one project (or, for the admin, every project) POSTed to `url`. */
export const webhooks = sqliteTable(
  "webhooks",
  {
    id: text("id").primaryKey(),
    /** null: every project (admin only). */
    project: text("project"),
    url: text("url").notNull(),
    /** e.g. `["job.completed", "job.failed"]` */
    events: text("events", { mode: "json" }).$type<string[]>().notNull(),
    /** The signing secret, sealed like project secrets (it must be read back to sign). */
    sealedSecret: text("sealed_secret").notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("webhooks_project").on(t.project)],
);

/** One job event to one webhook: retried with backoff until delivered or given up. */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    id: text("id").primaryKey(),
    webhookId: text("webhook_id").notNull(),
    eventId: integer("event_id").notNull(),
    event: text("event").notNull(),
    payload: text("payload").notNull(),
    status: text("status", { enum: ["pending", "delivered", "failed"] }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    nextAt: integer("next_at").notNull(),
    lastStatus: integer("last_status"),
    lastError: text("last_error"),
    createdAt: integer("created_at").notNull(),
    finishedAt: integer("finished_at"),
  },
  (t) => [uniqueIndex("webhook_deliveries_event").on(t.webhookId, t.eventId), index("webhook_deliveries_due").on(t.status, t.nextAt), index("webhook_deliveries_webhook").on(t.webhookId, t.createdAt)],
);

/** A pool's autoscaling hook (docs/autoscaling.md): one per pool, set by the admin. */
export const autoscaleHooks = sqliteTable("autoscale_hooks", {
  pool: text("pool").primaryKey(),
  /** The `gridx-webhook-id` of its calls, and the id its secret is sealed under. */
  id: text("id").notNull(),
  url: text("url").notNull(),
  /** The signing secret, sealed as webhooks' are. */
  sealedSecret: text("sealed_secret").notNull(),
  createdBy: text("created_by").notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

/** One call of a pool's autoscaling hook: retried with backoff within the cooldown, then given up. */
export const autoscaleCalls = sqliteTable(
  "autoscale_calls",
  {
    id: text("id").primaryKey(),
    pool: text("pool").notNull(),
    kind: text("kind", { enum: ["scale_up", "scale_down"] }).notNull(),
    payload: text("payload").notNull(),
    status: text("status", { enum: ["pending", "delivered", "failed"] }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    nextAt: integer("next_at").notNull(),
    lastStatus: integer("last_status"),
    lastError: text("last_error"),
    createdAt: integer("created_at").notNull(),
    finishedAt: integer("finished_at"),
  },
  (t) => [index("autoscale_calls_pool").on(t.pool, t.kind, t.id)],
);

/**
 * An edge of a workflow: `child` waits in `queued` (hold `deps`) until `parent` (a job, or
 * every task of an array) ends as `condition` asks. Read from the parent's side when it ends.
 */
export const jobDeps = sqliteTable(
  "job_deps",
  {
    child: text("child").notNull(),
    parent: text("parent").notNull(),
    parentKind: text("parent_kind", { enum: ["job", "array"] }).notNull(),
    condition: text("condition", { enum: ["completed", "finished"] }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.child, t.parent] }), index("job_deps_parent").on(t.parent)],
);

/** N tasks submitted as one: each is a job with this `array_id`. */
export const jobArrays = sqliteTable(
  "job_arrays",
  {
    id: text("id").primaryKey(),
    project: text("project").notNull(),
    pool: text("pool").notNull(),
    name: text("name"),
    count: integer("count").notNull(),
    submittedBy: text("submitted_by").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("job_arrays_project").on(t.project, t.id)],
);

/** A job template run on a cron expression. */
export const schedules = sqliteTable(
  "schedules",
  {
    id: text("id").primaryKey(),
    project: text("project").notNull(),
    name: text("name").notNull(),
    cron: text("cron").notNull(),
    timezone: text("timezone").notNull(),
    /** The job as a user would submit it (a JobRequest), validated when the schedule was saved. */
    job: text("job", { mode: "json" }).$type<JobRequest>().notNull(),
    overlap: text("overlap", { enum: ["skip", "allow"] }).notNull(),
    paused: integer("paused", { mode: "boolean" }).notNull().default(false),
    /** The next tick, in ms since the epoch; null while paused. */
    nextRunAt: integer("next_run_at"),
    lastRunAt: integer("last_run_at"),
    /** Its jobs are submitted as this user (`admin` for the admin token). */
    submittedBy: text("submitted_by").notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [uniqueIndex("schedules_project_name").on(t.project, t.name), index("schedules_next").on(t.paused, t.nextRunAt)],
);

/** One tick of a schedule: the job it submitted, or why it submitted none. At most one row (and one job) per tick. */
export const scheduleRuns = sqliteTable(
  "schedule_runs",
  {
    scheduleId: text("schedule_id").notNull(),
    tickAt: integer("tick_at").notNull(),
    jobId: text("job_id"),
    outcome: text("outcome", { enum: ["submitted", "skipped", "refused"] }).notNull(),
    message: text("message"),
    at: integer("at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.scheduleId, t.tickAt] })],
);

/** A one-time link to a job's port (POST /v1/jobs/:id/ports/:port/links): only its SHA-256 is stored; `used_at` set on first use. */
export const portLinks = sqliteTable("port_links", {
  id: text("id").primaryKey(),
  hash: text("hash").notNull().unique("port_links_hash"),
  jobId: text("job_id").notNull(),
  port: integer("port").notNull(),
  /** The token it was made with (`admin` for the admin token): revoking that token ends the sessions opened with it. */
  tokenId: text("token_id").notNull(),
  createdBy: text("created_by").notNull(),
  createdAt: integer("created_at").notNull(),
  expiresAt: integer("expires_at").notNull(),
  usedAt: integer("used_at"),
});

/** A browser's session to one job's port (the `gridx_port` cookie holds its secret, this table the SHA-256); ends after the port's idle timeout. */
export const portSessions = sqliteTable(
  "port_sessions",
  {
    id: text("id").primaryKey(),
    hash: text("hash").notNull(),
    jobId: text("job_id").notNull(),
    port: integer("port").notNull(),
    tokenId: text("token_id").notNull(),
    createdBy: text("created_by").notNull(),
    idleTimeoutS: integer("idle_timeout_s").notNull(),
    createdAt: integer("created_at").notNull(),
    lastUsedAt: integer("last_used_at").notNull(),
  },
  (t) => [uniqueIndex("port_sessions_hash").on(t.hash), index("port_sessions_job").on(t.jobId)],
);

/** A published agent bundle (POST /v1/agent-bundles): bytes in R2 at `key`, its SHA-256 held here, `ready` once its upload is complete and checked. */
export const agentBundles = sqliteTable("agent_bundles", {
  version: text("version").primaryKey(),
  sha256: text("sha256").notNull(),
  size: integer("size").notNull(),
  status: text("status", { enum: ["uploading", "ready"] }).notNull(),
  key: text("key").notNull(),
  createdBy: text("created_by").notNull(),
  createdAt: integer("created_at").notNull(),
  readyAt: integer("ready_at"),
});

/** The agent version an operator asked a pool to run (POST /v1/pools/:pool/upgrade). */
export const poolUpgrades = sqliteTable("pool_upgrades", {
  pool: text("pool").primaryKey(),
  version: text("version").notNull(),
  requestedBy: text("requested_by").notNull(),
  requestedAt: integer("requested_at").notNull(),
});

/** Each worker's latest upgrade: from which version to which, and where it stands. */
export const workerUpgrades = sqliteTable(
  "worker_upgrades",
  {
    workerId: text("worker_id").primaryKey(),
    pool: text("pool").notNull(),
    fromVersion: text("from_version").notNull(),
    toVersion: text("to_version").notNull(),
    state: text("state", { enum: ["pending", "downloading", "draining", "restarting", "done", "rolled_back", "failed"] }).notNull(),
    reason: text("reason"),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("worker_upgrades_pool").on(t.pool)],
);

/** One job per worker of a pool, each pinned to its worker (POST /v1/pools/:pool/broadcast). */
export const broadcasts = sqliteTable(
  "broadcasts",
  {
    id: text("id").primaryKey(),
    project: text("project").notNull(),
    pool: text("pool").notNull(),
    name: text("name"),
    count: integer("count").notNull(),
    submittedBy: text("submitted_by").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("broadcasts_project").on(t.project, t.id)],
);

/** Which job a broadcast gave each of its workers. */
export const broadcastJobs = sqliteTable(
  "broadcast_jobs",
  {
    broadcastId: text("broadcast_id").notNull(),
    workerId: text("worker_id").notNull(),
    jobId: text("job_id").notNull(),
  },
  // By job too: retention's purge finds a deleted job's row (../retention/purge.ts).
  (t) => [primaryKey({ columns: [t.broadcastId, t.workerId] }), index("broadcast_jobs_job").on(t.jobId)],
);
