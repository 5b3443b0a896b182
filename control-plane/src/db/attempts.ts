import { and, asc, desc, eq, inArray } from "drizzle-orm";
import type { ResolvedCommits } from "../../../protocol/index.ts";
import type { Transition } from "../coordinator/job-state.ts";
import type { Assignment } from "../coordinator/scheduler.ts";
import type { Db } from "./client.ts";
import { attempts, jobs } from "./schema.ts";

export type AttemptRow = typeof attempts.$inferSelect;
/** An attempt with the job fields the coordinator decides on. */
export type AttemptWithJob = AttemptRow & {
  jobStatus: (typeof jobs.$inferSelect)["status"];
  jobAttempt: number;
  maxRetries: number;
};

/** Attempts that still hold a slot on their worker. */
export const HOLDING = ["assigned", "running", "canceling"] as const;

/*
 * Attempts are read with their job's fields on every start, result and scheduling round, so
 * this read is SQL text too, and rows come back as arrays mapped by position (see SQL below).
 */
const SELECT_WITH_JOB =
  "SELECT a.job_id, a.attempt, a.worker_id, a.status, a.cpus_milli, a.memory_mb, a.gpu_indices, a.queued_at, a.assigned_at, a.started_at, a.finished_at, " +
  "a.deadline_at, a.exit_code, a.failure_reason, j.status, j.attempt, j.max_retries, coalesce(json_extract(j.spec, '$.limits.timeout_s'), 0) " +
  "FROM attempts a JOIN jobs j ON j.id = a.job_id";

type WithJobRow = [string, number, string, AttemptRow["status"], number, number, string, number, number, number | null, number | null, number | null, number | null, string | null, AttemptWithJob["jobStatus"], number, number, number];

function withJob(r: WithJobRow): AttemptWithJob & { timeoutS: number } {
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
    jobStatus: r[14],
    jobAttempt: r[15],
    maxRetries: r[16],
    timeoutS: r[17],
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

/** Several attempts in one read, with each job's timeout (for a start's deadline). */
export async function getAttempts(db: Db, refs: { jobId: string; attempt: number }[]): Promise<(AttemptWithJob & { timeoutS: number })[]> {
  if (refs.length === 0) return [];
  const rows = await selectWithJob(db, "a.job_id IN (SELECT value FROM json_each(?1))", JSON.stringify([...new Set(refs.map((r) => r.jobId))]));
  const wanted = new Set(refs.map((r) => `${r.jobId}#${r.attempt}`));
  return rows.filter((r) => wanted.has(`${r.jobId}#${r.attempt}`));
}

const HOLDING_IN = HOLDING.map((s) => `'${s}'`).join(", ");

export async function holdingAttempts(db: Db, workerIds: string[]): Promise<AttemptWithJob[]> {
  if (workerIds.length === 0) return [];
  return selectWithJob(db, `a.worker_id IN (SELECT value FROM json_each(?1)) AND a.status IN (${HOLDING_IN})`, JSON.stringify(workerIds));
}

export function pastDeadline(db: Db, pool: string, now: number): Promise<AttemptWithJob[]> {
  return selectWithJob(db, "j.pool = ?1 AND a.status = 'running' AND a.deadline_at < ?2", pool, now);
}

export function queuedJobs(db: Db, pool: string, limit: number) {
  return db
    .select({ id: jobs.id, attempt: jobs.attempt, spec: jobs.spec, queuedAt: jobs.queuedAt })
    .from(jobs)
    .where(and(eq(jobs.pool, pool), eq(jobs.status, "queued")))
    .orderBy(desc(jobs.priority), asc(jobs.id))
    .limit(limit);
}

export async function hasUnfinishedJobs(db: Db, pool: string): Promise<boolean> {
  const row = await db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(eq(jobs.pool, pool), inArray(jobs.status, ["queued", "assigned", "running"])))
    .limit(1);
  return row.length > 0;
}

type Queued = { id: string; attempt: number; queuedAt: number };

/*
 * The statements every job passes through (assign, start, end) are written as SQL, prepared
 * from constant text: building them with the query builder cost more CPU per job than running
 * them, and the coordinator's thread is what bounds a pool's throughput.
 */
const SQL = {
  assignJob: "UPDATE jobs SET status = 'assigned', attempt = ?1, worker_id = ?2, assigned_at = ?3, started_at = NULL WHERE id = ?4 AND status = 'queued' AND attempt = ?5 RETURNING id",
  // The attempt copies queued_at from its job, and only for the assignment the update above just made.
  insertAttempt:
    "INSERT INTO attempts (job_id, attempt, worker_id, status, cpus_milli, memory_mb, gpu_indices, queued_at, assigned_at, started_at, finished_at, deadline_at, exit_code, failure_reason) " +
    "SELECT id, attempt, ?1, 'assigned', ?2, ?3, ?4, queued_at, ?5, NULL, NULL, NULL, NULL, NULL FROM jobs WHERE id = ?6 AND attempt = ?7 AND worker_id = ?1 AND assigned_at = ?5 " +
    "ON CONFLICT DO NOTHING",
  startAttempt: "UPDATE attempts SET status = 'running', started_at = ?1, deadline_at = ?2 WHERE job_id = ?3 AND attempt = ?4 AND status = 'assigned'",
  startJob: "UPDATE jobs SET status = 'running', started_at = ?1, resolved = coalesce(?2, resolved) WHERE id = ?3 AND attempt = ?4 AND status = 'assigned'",
  endAttempt: `UPDATE attempts SET status = ?1, exit_code = ?2, failure_reason = ?3, finished_at = ?4 WHERE job_id = ?5 AND attempt = ?6 AND status IN (${HOLDING_IN})`,
  finishJob:
    "UPDATE jobs SET status = ?1, exit_code = ?2, failure_reason = ?3, failure_message = ?4, resolved = coalesce(?5, resolved), finished_at = ?6 WHERE id = ?7 AND attempt = ?8 AND status = ?9",
  // Binds the same nine values as finishJob; ?5 (resolved) is unused, a requeued job forgets what it resolved.
  requeueJob:
    "UPDATE jobs SET status = ?1, exit_code = ?2, failure_reason = ?3, failure_message = ?4, worker_id = NULL, queued_at = ?6, assigned_at = NULL, started_at = NULL, resolved = NULL " +
    "WHERE id = ?7 AND attempt = ?8 AND status = ?9",
} as const;

export type Statement = D1PreparedStatement;

const json = (v: unknown) => (v == null ? null : JSON.stringify(v));

/**
 * Stores a round of assignments in one transaction and returns those that took: a job
 * canceled meanwhile is left alone. Nothing is sent to an agent before this commits.
 */
export async function storeAssignments(db: Db, planned: { assignment: Assignment; job: Queued }[], now: number) {
  if (planned.length === 0) return [];
  const d1 = db.$client;
  const statements: Statement[] = [];
  for (const { assignment: a, job } of planned) {
    const attempt = job.attempt + 1;
    statements.push(
      d1.prepare(SQL.assignJob).bind(attempt, a.workerId, now, job.id, job.attempt),
      d1.prepare(SQL.insertAttempt).bind(a.workerId, a.cpusMilli, a.memoryMb, JSON.stringify(a.gpuIndices), now, job.id, attempt),
    );
  }
  const results = await d1.batch<{ id: string }>(statements);
  return planned.filter((_, i) => results[i * 2]!.results.length > 0).map((p) => ({ ...p, attempt: p.job.attempt + 1 }));
}

/** The statements that mark an attempt started and its job running, for a batch. */
export function startStatements(db: Db, a: AttemptWithJob, now: number, deadlineAt: number, resolved: ResolvedCommits | null): [Statement, Statement] {
  const d1 = db.$client;
  return [d1.prepare(SQL.startAttempt).bind(now, deadlineAt, a.jobId, a.attempt), d1.prepare(SQL.startJob).bind(now, json(resolved), a.jobId, a.attempt)];
}

/**
 * The statements that end an attempt and, when it is the job's latest, move the job as the
 * state machine said. `attemptStatus: "canceling"` keeps the slot held until the agent
 * confirms the container is gone.
 */
export function settleStatements(
  db: Db,
  a: AttemptWithJob,
  attemptEnd: { status: "finished" | "lost" | "canceling"; exitCode: number | null; failureReason: string | null },
  job: (Transition & { message: string | null; resolved?: ResolvedCommits }) | null,
  now: number,
): [Statement, ...Statement[]] {
  const d1 = db.$client;
  const end = d1.prepare(SQL.endAttempt).bind(attemptEnd.status, attemptEnd.exitCode, attemptEnd.failureReason, attemptEnd.status === "canceling" ? null : now, a.jobId, a.attempt);
  if (!job || a.jobAttempt !== a.attempt) return [end];
  const requeued = job.status === "queued";
  const update = d1
    .prepare(requeued ? SQL.requeueJob : SQL.finishJob)
    .bind(job.status, job.exitCode, job.failureReason, job.message, json(job.resolved), now, a.jobId, a.attempt, a.jobStatus);
  return [end, update];
}

/** Fails a job that never started (its inputs cannot be had). */
export function failQueued(db: Db, jobId: string, reason: "input_error", message: string, now: number) {
  return db
    .update(jobs)
    .set({ status: "failed", failureReason: reason, failureMessage: message, finishedAt: now })
    .where(and(eq(jobs.id, jobId), eq(jobs.status, "queued")));
}

/** Cancels a job that holds no attempt. */
export function cancelQueued(db: Db, jobId: string, now: number) {
  return db
    .update(jobs)
    .set({ status: "canceled", finishedAt: now, failureMessage: "canceled by user" })
    .where(and(eq(jobs.id, jobId), eq(jobs.status, "queued")))
    .returning({ id: jobs.id });
}

