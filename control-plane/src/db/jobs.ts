import { and, desc, eq, lt, sql, type SQL } from "drizzle-orm";
import type { FailureReason, JobSpec, JobStatus } from "../../../protocol/index.ts";
import { inJson, type Db } from "./client.ts";
import { jobs } from "./schema.ts";

export type JobRow = typeof jobs.$inferSelect;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The public shape of a job, as every API route returns it; `pendingReason` says why a queued job waits. */
export function jobView(row: JobRow, pendingReason: string | null = null) {
  const spec = row.spec as JobSpec;
  return {
    id: row.id,
    kind: row.kind,
    project: row.project,
    name: row.name,
    tags: row.tags,
    submitted_by: row.submittedBy,
    pool: row.pool,
    status: row.status,
    priority: row.priority,
    max_retries: row.maxRetries,
    attempt: row.attempt,
    worker_id: row.workerId,
    exit_code: row.exitCode,
    // Only the coordinator writes it, and only with a FailureReason.
    failure_reason: row.failureReason as FailureReason | null,
    failure_message: row.failureMessage,
    pending_reason: row.status === "queued" ? pendingReason : null,
    limits: spec.limits,
    requirements: spec.requirements,
    created_at: new Date(row.createdAt).toISOString(),
    assigned_at: iso(row.assignedAt),
    started_at: iso(row.startedAt),
    finished_at: iso(row.finishedAt),
    /** Repo jobs: the commits and image the latest attempt ran, once its agent resolved them. */
    resolved: row.resolved ?? null,
    array_id: row.arrayId,
    array_index: row.arrayIndex,
    rerun_of: row.rerunOf,
    schedule_id: row.scheduleId,
    // Specs stored before workflows existed have none of these.
    depends_on: spec.depends_on ?? [],
    retry: spec.retry ?? null,
    queue_ttl_s: spec.queue_ttl_s ?? null,
    retry_at: row.status === "queued" && row.hold === "retry" ? iso(row.notBefore) : null,
  };
}

export function getJob(db: Db, id: string): Promise<JobRow | undefined> {
  return db.query.jobs.findFirst({ where: eq(jobs.id, id) });
}

export function findByIdempotencyKey(db: Db, createdBy: string, key: string): Promise<JobRow | undefined> {
  return db.query.jobs.findFirst({ where: and(eq(jobs.createdBy, createdBy), eq(jobs.idempotencyKey, key)) });
}

/** What a job list can be narrowed to; `projects` null means every project (the admin). */
export interface JobFilter {
  projects: string[] | null;
  project?: string;
  status?: JobStatus;
  pool?: string;
  /** `key=value`: jobs carrying that tag. */
  tag?: string;
  /** The tasks of this array. */
  array?: string;
  /** Jobs whose name contains this. */
  name?: string;
  submitted_by?: string;
  limit: number;
  cursor?: string;
}

/** Newest first; the cursor is the last id of the previous page. */
export async function listJobs(db: Db, opts: JobFilter) {
  const where: SQL[] = [];
  if (opts.projects) where.push(inJson(jobs.project, opts.projects));
  if (opts.project) where.push(eq(jobs.project, opts.project));
  if (opts.status) where.push(eq(jobs.status, opts.status));
  if (opts.pool) where.push(eq(jobs.pool, opts.pool));
  if (opts.array) where.push(eq(jobs.arrayId, opts.array));
  if (opts.tag) where.push(sql`EXISTS (SELECT 1 FROM json_each(${jobs.tags}) WHERE value = ${opts.tag})`);
  if (opts.name) where.push(sql`instr(${jobs.name}, ${opts.name}) > 0`);
  if (opts.submitted_by) where.push(eq(jobs.submittedBy, opts.submitted_by));
  if (opts.cursor) where.push(lt(jobs.id, opts.cursor));
  const rows = await db
    .select()
    .from(jobs)
    .where(and(...where))
    .orderBy(desc(jobs.id))
    .limit(opts.limit + 1);
  const page = rows.slice(0, opts.limit);
  return { jobs: page, nextCursor: rows.length > opts.limit ? (page.at(-1)?.id ?? null) : null };
}
