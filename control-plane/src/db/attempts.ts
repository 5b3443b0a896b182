import { and, asc, desc, eq, inArray, lt, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
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

const withJob = {
  jobId: attempts.jobId,
  attempt: attempts.attempt,
  workerId: attempts.workerId,
  status: attempts.status,
  cpusMilli: attempts.cpusMilli,
  memoryMb: attempts.memoryMb,
  gpuIndices: attempts.gpuIndices,
  queuedAt: attempts.queuedAt,
  assignedAt: attempts.assignedAt,
  startedAt: attempts.startedAt,
  finishedAt: attempts.finishedAt,
  deadlineAt: attempts.deadlineAt,
  exitCode: attempts.exitCode,
  failureReason: attempts.failureReason,
  jobStatus: jobs.status,
  jobAttempt: jobs.attempt,
  maxRetries: jobs.maxRetries,
};

export async function getAttempt(db: Db, jobId: string, attempt: number): Promise<AttemptWithJob | undefined> {
  const [row] = await db
    .select(withJob)
    .from(attempts)
    .innerJoin(jobs, eq(jobs.id, attempts.jobId))
    .where(and(eq(attempts.jobId, jobId), eq(attempts.attempt, attempt)));
  return row;
}

/** Several attempts in one read, with each job's timeout (for a start's deadline). */
export async function getAttempts(db: Db, refs: { jobId: string; attempt: number }[]): Promise<(AttemptWithJob & { timeoutS: number })[]> {
  if (refs.length === 0) return [];
  const rows = await db
    .select({ ...withJob, timeoutS: sql<number>`coalesce(json_extract(${jobs.spec}, '$.limits.timeout_s'), 0)` })
    .from(attempts)
    .innerJoin(jobs, eq(jobs.id, attempts.jobId))
    .where(inArray(attempts.jobId, [...new Set(refs.map((r) => r.jobId))]));
  const wanted = new Set(refs.map((r) => `${r.jobId}#${r.attempt}`));
  return rows.filter((r) => wanted.has(`${r.jobId}#${r.attempt}`));
}

export function holdingAttempts(db: Db, workerIds: string[]): Promise<AttemptWithJob[]> {
  if (workerIds.length === 0) return Promise.resolve([]);
  return db
    .select(withJob)
    .from(attempts)
    .innerJoin(jobs, eq(jobs.id, attempts.jobId))
    .where(and(inArray(attempts.workerId, workerIds), inArray(attempts.status, HOLDING)));
}

export function pastDeadline(db: Db, pool: string, now: number): Promise<AttemptWithJob[]> {
  return db
    .select(withJob)
    .from(attempts)
    .innerJoin(jobs, eq(jobs.id, attempts.jobId))
    .where(and(eq(jobs.pool, pool), eq(attempts.status, "running"), lt(attempts.deadlineAt, now)));
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

/**
 * Stores a round of assignments in one transaction and returns those that took: a job
 * canceled meanwhile is left alone. Nothing is sent to an agent before this commits.
 */
export async function storeAssignments(db: Db, planned: { assignment: Assignment; job: Queued }[], now: number) {
  if (planned.length === 0) return [];
  const statements: BatchItem<"sqlite">[] = [];
  for (const { assignment: a, job } of planned) {
    const attempt = job.attempt + 1;
    statements.push(
      db
        .update(jobs)
        .set({ status: "assigned", attempt, workerId: a.workerId, assignedAt: now, startedAt: null })
        .where(and(eq(jobs.id, job.id), eq(jobs.status, "queued"), eq(jobs.attempt, job.attempt)))
        .returning({ id: jobs.id }),
      db
        .insert(attempts)
        .select(
          db
            .select({
              jobId: jobs.id,
              attempt: jobs.attempt,
              workerId: sql`${a.workerId}`.as("worker_id"),
              status: sql`'assigned'`.as("status"),
              cpusMilli: sql`${a.cpusMilli}`.as("cpus_milli"),
              memoryMb: sql`${a.memoryMb}`.as("memory_mb"),
              gpuIndices: sql`${JSON.stringify(a.gpuIndices)}`.as("gpu_indices"),
              queuedAt: jobs.queuedAt,
              assignedAt: sql`${now}`.as("assigned_at"),
              startedAt: sql`NULL`.as("started_at"),
              finishedAt: sql`NULL`.as("finished_at"),
              deadlineAt: sql`NULL`.as("deadline_at"),
              exitCode: sql`NULL`.as("exit_code"),
              failureReason: sql`NULL`.as("failure_reason"),
            })
            .from(jobs)
            .where(and(eq(jobs.id, job.id), eq(jobs.attempt, attempt), eq(jobs.workerId, a.workerId), eq(jobs.assignedAt, now))),
        )
        .onConflictDoNothing(),
    );
  }
  const results = (await db.batch(statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]])) as unknown[];
  return planned.filter((_, i) => (results[i * 2] as unknown[]).length > 0).map((p) => ({ ...p, attempt: p.job.attempt + 1 }));
}

/** The statements that mark an attempt started and its job running, for a batch. */
export function startStatements(db: Db, a: AttemptWithJob, now: number, deadlineAt: number, resolved: ResolvedCommits | null): [BatchItem<"sqlite">, BatchItem<"sqlite">] {
  return [
    db.update(attempts).set({ status: "running", startedAt: now, deadlineAt }).where(and(eq(attempts.jobId, a.jobId), eq(attempts.attempt, a.attempt), eq(attempts.status, "assigned"))),
    db
      .update(jobs)
      .set({ status: "running", startedAt: now, ...(resolved ? { resolved } : {}) })
      .where(and(eq(jobs.id, a.jobId), eq(jobs.attempt, a.attempt), eq(jobs.status, "assigned"))),
  ];
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
): [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]] {
  const end = db
    .update(attempts)
    .set({
      status: attemptEnd.status,
      exitCode: attemptEnd.exitCode,
      failureReason: attemptEnd.failureReason,
      finishedAt: attemptEnd.status === "canceling" ? null : now,
    })
    .where(and(eq(attempts.jobId, a.jobId), eq(attempts.attempt, a.attempt), inArray(attempts.status, HOLDING)));
  if (!job || a.jobAttempt !== a.attempt) return [end];
  const requeued = job.status === "queued";
  const jobUpdate = db
    .update(jobs)
    .set({
      status: job.status,
      exitCode: job.exitCode,
      failureReason: job.failureReason,
      failureMessage: job.message,
      ...(job.resolved ? { resolved: job.resolved } : {}),
      ...(requeued ? { workerId: null, queuedAt: now, assignedAt: null, startedAt: null, resolved: null } : { finishedAt: now }),
    })
    .where(and(eq(jobs.id, a.jobId), eq(jobs.attempt, a.attempt), eq(jobs.status, a.jobStatus)));
  return [end, jobUpdate];
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

