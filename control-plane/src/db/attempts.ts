import { and, desc, eq, inArray } from "drizzle-orm";
import type { AttemptUsage, JobSpec, ResolvedCommits, RetryPolicy } from "../../../protocol/index.ts";
import type { Transition } from "../coordinator/job-state.ts";
import type { Assignment } from "../coordinator/scheduler.ts";
import type { Db } from "./client.ts";
import { attempts, jobs, type Quotas } from "./schema.ts";

export type AttemptRow = typeof attempts.$inferSelect;
/** An attempt with the job fields the coordinator decides on. */
export type AttemptWithJob = AttemptRow & {
  jobStatus: (typeof jobs.$inferSelect)["status"];
  jobAttempt: number;
  maxRetries: number;
  /** The job's own time limit (0: none), which a start turns into a deadline. */
  timeoutS: number;
  /** The job's project, whose fair-share usage the attempt's slot counts toward. */
  project: string;
  /** The job's retry policy for failed attempts (retry-policy.ts). */
  retry: RetryPolicy | null;
};

/** Attempts that still hold a slot on their worker. */
export const HOLDING = ["assigned", "running", "canceling"] as const;

/*
 * Attempts are read with their job's fields whenever a worker joins, so this read is SQL
 * text too, and rows come back as arrays mapped by position (see SQL below).
 */
const SELECT_WITH_JOB =
  "SELECT a.job_id, a.attempt, a.worker_id, a.status, a.cpus_milli, a.memory_mb, a.gpu_indices, a.queued_at, a.assigned_at, a.started_at, a.finished_at, " +
  "a.deadline_at, a.exit_code, a.failure_reason, a.usage, j.status, j.attempt, j.max_retries, coalesce(json_extract(j.spec, '$.limits.timeout_s'), 0), j.project, json_extract(j.spec, '$.retry') " +
  "FROM attempts a JOIN jobs j ON j.id = a.job_id";

type WithJobRow = [
  string, number, string, AttemptRow["status"], number, number, string, number, number, number | null, number | null, number | null, number | null, string | null, string | null,
  AttemptWithJob["jobStatus"], number, number, number, string, string | null,
];

function withJob(r: WithJobRow): AttemptWithJob {
  return {
    jobId: r[0],
    attempt: r[1],
    workerId: r[2],
    status: r[3],
    cpusMilli: r[4],
    memoryMb: r[5],
    gpuIndices: JSON.parse(r[6]) as number[],
    queuedAt: r[7],
    assignedAt: r[8],
    startedAt: r[9],
    finishedAt: r[10],
    deadlineAt: r[11],
    exitCode: r[12],
    failureReason: r[13],
    usage: r[14] === null ? null : (JSON.parse(r[14]) as AttemptUsage),
    jobStatus: r[15],
    jobAttempt: r[16],
    maxRetries: r[17],
    timeoutS: r[18],
    project: r[19],
    retry: r[20] === null ? null : (JSON.parse(r[20]) as RetryPolicy),
  };
}

async function selectWithJob(db: Db, where: string, ...values: unknown[]) {
  const rows = await db.$client.prepare(`${SELECT_WITH_JOB} WHERE ${where}`).bind(...values).raw<WithJobRow>();
  return rows.map(withJob);
}

export async function getAttempt(db: Db, jobId: string, attempt: number): Promise<AttemptWithJob | undefined> {
  const [row] = await selectWithJob(db, "a.job_id = ?1 AND a.attempt = ?2", jobId, attempt);
  return row;
}

/** Several attempts in one read, by job and attempt number; those that do not exist are left out. */
export async function attemptsByRefs(db: Db, refs: { job_id: string; attempt: number }[]): Promise<AttemptWithJob[]> {
  if (refs.length === 0) return [];
  return selectWithJob(db, "(a.job_id, a.attempt) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?1))", JSON.stringify(refs.map((r) => [r.job_id, r.attempt])));
}

const HOLDING_IN = HOLDING.map((s) => `'${s}'`).join(", ");

export async function holdingAttempts(db: Db, workerIds: string[]): Promise<AttemptWithJob[]> {
  if (workerIds.length === 0) return [];
  return selectWithJob(db, `a.worker_id IN (SELECT value FROM json_each(?1)) AND a.status IN (${HOLDING_IN})`, JSON.stringify(workerIds));
}

/**
 * Attempts past their deadline: running ones past the job's timeout (and the grace), and
 * assigned ones not started in time. An assignment stored before start deadlines existed has
 * none, and gets `startTimeoutMs` from its assignment.
 */
export function pastDeadline(db: Db, pool: string, now: number, startTimeoutMs: number): Promise<AttemptWithJob[]> {
  return selectWithJob(
    db,
    "j.pool = ?1 AND ((a.status = 'running' AND a.deadline_at < ?2) OR (a.status = 'assigned' AND coalesce(a.deadline_at, a.assigned_at + ?3) < ?2))",
    pool,
    now,
    startTimeoutMs,
  );
}

/** A queued job as a scheduling round reads it. */
export interface QueuedRow {
  id: string;
  attempt: number;
  maxRetries: number;
  queuedAt: number;
  project: string;
  spec: JobSpec;
}

/** A project with queued jobs in the pool, as fair share weighs it. */
export interface QueuedProject {
  weight: number;
  quotas: Quotas;
}

/**
 * The head of each project's queue in a pool (highest priority first, then oldest), with each
 * project's weight and quotas, in one statement. Each project gets `perProject` rows, fewer
 * when many projects share `total` (never fewer than `floor`); at most QUEUE_PROJECTS projects
 * are read, in name order. Read every scheduling round.
 */
/** `pinnedTo`: the workers whose pinned jobs (`"worker"`) are read; others' wait unread. */
export async function queuedJobs(db: Db, pool: string, read: { perProject: number; total: number; floor: number; pinnedTo: readonly string[] }): Promise<{ jobs: QueuedRow[]; projects: Map<string, QueuedProject> }> {
  const rows = await db.$client
    .prepare(SQL.queued)
    .bind(pool, read.perProject, read.total, read.floor, QUEUE_PROJECTS, JSON.stringify(read.pinnedTo))
    .raw<[string, number, number, number, string, string, number, string]>();
  const projects = new Map<string, QueuedProject>();
  const head = rows.map((r) => {
    if (!projects.has(r[5])) projects.set(r[5], { weight: r[6], quotas: JSON.parse(r[7]) as Quotas });
    return { id: r[0], attempt: r[1], maxRetries: r[2], queuedAt: r[3], spec: JSON.parse(r[4]) as JobSpec, project: r[5] };
  });
  return { jobs: head, projects };
}

/** Projects read per scheduling round at most; beyond it, projects later by name wait for a round with fewer. */
const QUEUE_PROJECTS = 256;

export async function hasUnfinishedJobs(db: Db, pool: string): Promise<boolean> {
  const row = await db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(eq(jobs.pool, pool), inArray(jobs.status, ["queued", "assigned", "running"])))
    .limit(1);
  return row.length > 0;
}

/** When a job that became ready at `at` (SQL) fails unschedulable: its queue_ttl_s later, if it has one. */
export const expiryFrom = (at: string) => `${at} + json_extract(jobs.spec, '$.queue_ttl_s') * 1000`;

/** The rows of a batch's JSON parameter (?1) as a table `v` with these columns, by position. */
const rowsOf = (...columns: string[]) => `(SELECT ${columns.map((c, i) => `value ->> ${i} AS ${c}`).join(", ")} FROM json_each(?1)) AS v`;
const JOB_END_ROWS = rowsOf("job_id", "attempt", "prev_status", "status", "exit_code", "failure_reason", "message", "resolved", "at");

/*
 * The statements every job passes through (assign, start, end) are set-based: one statement
 * writes every row of its kind in a batch, from a JSON array bound as one parameter. A
 * statement costs far more than a row, locally and in D1, so a round or a group of agent
 * reports is a handful of statements however many jobs it moves. The planner cannot know how
 * few rows the JSON holds, so the status conditions carry a unary `+`, which keeps SQLite from
 * scanning a status index instead of looking each row up by its key.
 */
const SQL = {
  // The projects with queued jobs are found by seeking from one to the next in the queue index
  // (a skip scan), then each one's head is read from the same index: the cost follows the rows
  // read, not the depth of the queue.
  queued:
    "WITH RECURSIVE next(project) AS (" +
    "SELECT (SELECT min(project) FROM jobs WHERE pool = ?1 AND status = 'queued' AND hold IS NULL) " +
    "UNION ALL SELECT (SELECT min(project) FROM jobs WHERE pool = ?1 AND status = 'queued' AND hold IS NULL AND project > n.project) FROM next n WHERE n.project IS NOT NULL LIMIT ?5), " +
    "heads AS MATERIALIZED (SELECT project FROM next WHERE project IS NOT NULL) " +
    "SELECT j.id, j.attempt, j.max_retries, j.queued_at, j.spec, h.project, coalesce(p.weight, 1), coalesce(p.quotas, '{}') " +
    // A job pinned to a worker is read only while that worker has room (?6): pinned jobs waiting
    // on a busy or gone worker would otherwise fill the head and hide the project's other jobs.
    "FROM heads h JOIN jobs j ON j.id IN (SELECT id FROM jobs WHERE pool = ?1 AND status = 'queued' AND hold IS NULL AND project = h.project " +
    "AND (json_extract(spec, '$.worker') IS NULL OR json_extract(spec, '$.worker') IN (SELECT value FROM json_each(?6))) ORDER BY priority DESC, id " +
    "LIMIT max(?4, min(?2, ?3 / (SELECT count(*) FROM heads)))) LEFT JOIN projects p ON p.name = h.project " +
    // An IN list is probed in key order: the rows are put back in queue order.
    "ORDER BY h.project, j.priority DESC, j.id",
  assignJobs:
    "UPDATE jobs SET status = 'assigned', attempt = v.prev + 1, worker_id = v.worker_id, assigned_at = ?2, started_at = NULL " +
    `FROM ${rowsOf("job_id", "prev", "worker_id")} WHERE jobs.id = v.job_id AND +jobs.status = 'queued' AND jobs.attempt = v.prev RETURNING id`,
  // An attempt copies queued_at from its job, and only for the assignment the update above just made.
  insertAttempts:
    "INSERT INTO attempts (job_id, attempt, worker_id, status, cpus_milli, memory_mb, gpu_indices, queued_at, assigned_at, started_at, finished_at, deadline_at, exit_code, failure_reason) " +
    "SELECT j.id, j.attempt, v.worker_id, 'assigned', v.cpus_milli, v.memory_mb, v.gpu_indices, j.queued_at, ?2, NULL, NULL, ?3, NULL, NULL " +
    `FROM ${rowsOf("job_id", "prev", "worker_id", "cpus_milli", "memory_mb", "gpu_indices")} JOIN jobs j ON j.id = v.job_id ` +
    "WHERE j.attempt = v.prev + 1 AND j.worker_id = v.worker_id AND j.assigned_at = ?2 AND +j.status = 'assigned' ON CONFLICT DO NOTHING",
  // The agent took the assignment: the start bound gives way to the preparation bound.
  acceptAttempts:
    "UPDATE attempts SET deadline_at = v.deadline " +
    `FROM ${rowsOf("job_id", "attempt", "deadline")} WHERE attempts.job_id = v.job_id AND attempts.attempt = v.attempt AND +attempts.status = 'assigned'`,
  startAttempts:
    "UPDATE attempts SET status = 'running', started_at = v.at, deadline_at = v.deadline " +
    `FROM ${rowsOf("job_id", "attempt", "at", "deadline")} WHERE attempts.job_id = v.job_id AND attempts.attempt = v.attempt AND +attempts.status = 'assigned'`,
  startJobs:
    "UPDATE jobs SET status = 'running', started_at = v.at, resolved = coalesce(v.resolved, jobs.resolved) " +
    `FROM ${rowsOf("job_id", "attempt", "at", "deadline", "resolved")} WHERE jobs.id = v.job_id AND jobs.attempt = v.attempt AND +jobs.status = 'assigned'`,
  endAttempts:
    "UPDATE attempts SET status = v.status, exit_code = v.exit_code, failure_reason = v.failure_reason, finished_at = v.finished_at, usage = coalesce(v.usage, attempts.usage) " +
    `FROM ${rowsOf("job_id", "attempt", "status", "exit_code", "failure_reason", "finished_at", "usage")} ` +
    `WHERE attempts.job_id = v.job_id AND attempts.attempt = v.attempt AND +attempts.status IN (${HOLDING_IN})`,
  finishJobs:
    "UPDATE jobs SET status = v.status, exit_code = v.exit_code, failure_reason = v.failure_reason, failure_message = v.message, resolved = coalesce(v.resolved, jobs.resolved), finished_at = v.at " +
    `FROM ${JOB_END_ROWS} WHERE jobs.id = v.job_id AND jobs.attempt = v.attempt AND +jobs.status = v.prev_status`,
  // A requeued job forgets what its attempt resolved. A retry waits out its backoff (hold
  // `retry` until `not_before`); a job requeued at once starts its queue_ttl_s afresh.
  requeueJobs:
    "UPDATE jobs SET status = v.status, exit_code = v.exit_code, failure_reason = v.failure_reason, failure_message = v.message, worker_id = NULL, queued_at = v.at, assigned_at = NULL, started_at = NULL, resolved = NULL, " +
    "hold = CASE WHEN v.not_before > v.at THEN 'retry' END, not_before = CASE WHEN v.not_before > v.at THEN v.not_before END, " +
    `expires_at = CASE WHEN v.not_before > v.at THEN NULL ELSE ${expiryFrom("v.at")} END ` +
    `FROM ${rowsOf("job_id", "attempt", "prev_status", "status", "exit_code", "failure_reason", "message", "resolved", "at", "not_before")} WHERE jobs.id = v.job_id AND jobs.attempt = v.attempt AND +jobs.status = v.prev_status`,
} as const;

type Statement = D1PreparedStatement;

const statement = (db: Db, sql: string, rows: unknown[][], ...more: unknown[]) => db.$client.prepare(sql).bind(JSON.stringify(rows), ...more);

/**
 * Stores a round of assignments in one transaction and returns those that took, each with
 * the attempt as written: a job canceled meanwhile is left alone. Nothing is sent to an agent
 * before this commits.
 */
export async function storeAssignments(
  db: Db,
  planned: { assignment: Assignment; job: QueuedRow }[],
  now: number,
  startDeadline: number,
): Promise<{ job: QueuedRow; attempt: AttemptWithJob }[]> {
  if (planned.length === 0) return [];
  const rows = planned.map(({ assignment: a, job }) => [job.id, job.attempt, a.workerId, a.cpusMilli, a.memoryMb, a.gpuIndices]);
  const [assigned] = await db.$client.batch<{ id: string }>([statement(db, SQL.assignJobs, rows, now), statement(db, SQL.insertAttempts, rows, now, startDeadline)]);
  const took = new Set(assigned!.results.map((r) => r.id));
  return planned
    .filter(({ job }) => took.has(job.id))
    .map(({ assignment: a, job }) => ({
      job,
      attempt: {
        jobId: job.id,
        attempt: job.attempt + 1,
        workerId: a.workerId,
        status: "assigned",
        cpusMilli: a.cpusMilli,
        memoryMb: a.memoryMb,
        gpuIndices: a.gpuIndices,
        queuedAt: job.queuedAt,
        assignedAt: now,
        startedAt: null,
        finishedAt: null,
        deadlineAt: startDeadline,
        exitCode: null,
        failureReason: null,
        usage: null,
        jobStatus: "assigned",
        jobAttempt: job.attempt + 1,
        maxRetries: job.maxRetries,
        timeoutS: job.spec.limits.timeout_s,
        project: job.project,
        retry: job.spec.retry ?? null,
      },
    }));
}

/**
 * Starts and ends of attempts, gathered for one batch: each call returns the attempt as the
 * batch will leave it, and `statements()` writes all of them, starts before ends, so a job
 * that started and finished within one batch passes through both.
 */
export class AttemptWrites {
  private readonly accepts: unknown[][] = [];
  private readonly starts: unknown[][] = [];
  private readonly ends: unknown[][] = [];
  private readonly finishes: unknown[][] = [];
  private readonly requeues: unknown[][] = [];
  /** Every attempt written, as written, in the order decided. */
  readonly written: AttemptWithJob[] = [];

  /** An agent took an assigned attempt: it now has until `deadlineAt` to start it. */
  accept(a: AttemptWithJob, deadlineAt: number): AttemptWithJob {
    this.accepts.push([a.jobId, a.attempt, deadlineAt]);
    return this.wrote({ ...a, deadlineAt });
  }

  /** Marks an attempt started and, when it is the job's latest, its job running. */
  start(a: AttemptWithJob, now: number, deadlineAt: number, resolved: ResolvedCommits | null): AttemptWithJob {
    this.starts.push([a.jobId, a.attempt, now, deadlineAt, resolved]);
    const jobStarts = a.jobAttempt === a.attempt && a.jobStatus === "assigned";
    return this.wrote({ ...a, status: "running", startedAt: now, deadlineAt, jobStatus: jobStarts ? "running" : a.jobStatus });
  }

  /**
   * Ends an attempt and, when it is the job's latest and a transition is given, moves the job
   * as the state machine said. `status: "canceling"` keeps the slot held until the agent
   * confirms the container is gone.
   */
  end(
    a: AttemptWithJob,
    attemptEnd: { status: "finished" | "lost" | "canceling"; exitCode: number | null; failureReason: string | null; usage?: AttemptUsage },
    job: (Transition & { message: string | null; resolved?: ResolvedCommits }) | null,
    now: number,
  ): AttemptWithJob {
    const finishedAt = attemptEnd.status === "canceling" ? null : now;
    const usage = attemptEnd.usage ?? null;
    this.ends.push([a.jobId, a.attempt, attemptEnd.status, attemptEnd.exitCode, attemptEnd.failureReason, finishedAt, usage && JSON.stringify(usage)]);
    const moves = job !== null && a.jobAttempt === a.attempt;
    if (moves) {
      const row = [a.jobId, a.attempt, a.jobStatus, job.status, job.exitCode, job.failureReason, job.message, job.resolved ?? null, now];
      if (job.status === "queued") this.requeues.push([...row, now + (job.retryInMs ?? 0)]);
      else this.finishes.push(row);
    }
    return this.wrote({ ...a, status: attemptEnd.status, exitCode: attemptEnd.exitCode, failureReason: attemptEnd.failureReason, usage: usage ?? a.usage, finishedAt, jobStatus: moves ? job.status : a.jobStatus });
  }

  statements(db: Db): Statement[] {
    const kinds: [string, unknown[][]][] = [
      [SQL.acceptAttempts, this.accepts],
      [SQL.startAttempts, this.starts],
      [SQL.startJobs, this.starts],
      [SQL.endAttempts, this.ends],
      [SQL.finishJobs, this.finishes],
      [SQL.requeueJobs, this.requeues],
    ];
    return kinds.filter(([, rows]) => rows.length > 0).map(([sql, rows]) => statement(db, sql, rows));
  }

  private wrote(a: AttemptWithJob): AttemptWithJob {
    this.written.push(a);
    return a;
  }
}

/** Fails a job that never started (its inputs cannot be had). */
export function failQueued(db: Db, jobId: string, reason: "input_error", message: string, now: number) {
  return db
    .update(jobs)
    .set({ status: "failed", failureReason: reason, failureMessage: message, finishedAt: now, hold: null, notBefore: null, expiresAt: null })
    .where(and(eq(jobs.id, jobId), eq(jobs.status, "queued")));
}

/** Cancels a job that holds no attempt. */
export function cancelQueued(db: Db, jobId: string, now: number) {
  return db
    .update(jobs)
    .set({ status: "canceled", finishedAt: now, failureMessage: "canceled by user", hold: null, notBefore: null, expiresAt: null })
    .where(and(eq(jobs.id, jobId), eq(jobs.status, "queued")))
    .returning({ id: jobs.id });
}


/** A worker's latest attempts, newest first, with their job's project (so a caller sees only its own). */
export function attemptsOfWorker(db: Db, workerId: string, limit: number) {
  return db
    .select({ jobId: attempts.jobId, attempt: attempts.attempt, status: attempts.status, project: jobs.project, assignedAt: attempts.assignedAt, startedAt: attempts.startedAt, finishedAt: attempts.finishedAt, exitCode: attempts.exitCode, failureReason: attempts.failureReason })
    .from(attempts)
    .innerJoin(jobs, eq(jobs.id, attempts.jobId))
    .where(eq(attempts.workerId, workerId))
    .orderBy(desc(attempts.assignedAt))
    .limit(limit);
}
