import { and, asc, eq, gt, max } from "drizzle-orm";
import { jobEventType, type JobEvent } from "../../../protocol/index.ts";
import type { Db } from "./client.ts";
import { jobEvents } from "./schema.ts";

type EventRow = typeof jobEvents.$inferSelect;

export const eventView = (r: EventRow): JobEvent => ({
  id: r.id,
  type: jobEventType(r.status),
  job_id: r.jobId,
  project: r.project,
  pool: r.pool,
  status: r.status,
  attempt: r.attempt,
  exit_code: r.exitCode,
  failure_reason: r.failureReason,
  at: r.at,
});

/** A project's job events after an id, oldest first; only one job's with `job`. */
export async function eventsAfter(db: Db, project: string, after: number, opts: { job?: string; limit: number }): Promise<JobEvent[]> {
  const rows = await db
    .select()
    .from(jobEvents)
    .where(and(eq(jobEvents.project, project), opts.job ? eq(jobEvents.jobId, opts.job) : undefined, gt(jobEvents.id, after)))
    .orderBy(asc(jobEvents.id))
    .limit(opts.limit);
  return rows.map(eventView);
}

/** The newest event id of a project (0 when it has none). */
export async function lastEventId(db: Db, project: string): Promise<number> {
  const [row] = await db.select({ id: max(jobEvents.id) }).from(jobEvents).where(eq(jobEvents.project, project));
  return row?.id ?? 0;
}
