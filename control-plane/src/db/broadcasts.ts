import { eq } from "drizzle-orm";
import type { JobStatus } from "../../../protocol/index.ts";
import type { Db } from "./client.ts";
import { broadcasts } from "./schema.ts";

/*
 * A broadcast: one job per worker of a pool, each a normal job pinned to its worker. Its jobs
 * are written by submit (one transaction with the broadcast), read back here joined to their
 * jobs' outcomes.
 */

export type BroadcastRow = typeof broadcasts.$inferSelect;

/** One worker's part of a broadcast: its job and how that job stands now. */
export interface BroadcastPart {
  workerId: string;
  workerName: string | null;
  jobId: string;
  status: JobStatus;
  exitCode: number | null;
  failureReason: string | null;
  finishedAt: number | null;
}

/**
 * The statements that record a broadcast of these jobs (`pairs`: `[worker, job]`), each written
 * only if `guard` (the first job's id) was, so a submit that wrote no job records no broadcast.
 */
export function insertBroadcast(
  db: Db,
  b: Pick<BroadcastRow, "id" | "project" | "pool" | "name" | "submittedBy" | "createdAt">,
  pairs: readonly [worker: string, job: string][],
  guard: string,
): D1PreparedStatement[] {
  return [
    db.$client
      .prepare("INSERT INTO broadcasts (id, project, pool, name, count, submitted_by, created_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?8)")
      .bind(b.id, b.project, b.pool, b.name, pairs.length, b.submittedBy, b.createdAt, guard),
    db.$client
      .prepare("INSERT INTO broadcast_jobs (broadcast_id, worker_id, job_id) SELECT ?1, value ->> 0, value ->> 1 FROM json_each(?2) WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?3)")
      .bind(b.id, JSON.stringify(pairs), guard),
  ];
}

export function getBroadcast(db: Db, id: string): Promise<BroadcastRow | undefined> {
  return db.query.broadcasts.findFirst({ where: eq(broadcasts.id, id) });
}

/** Every worker's job of a broadcast, by worker name (a forgotten worker's: null, last). */
export async function broadcastParts(db: Db, id: string): Promise<BroadcastPart[]> {
  const rows = await db.$client
    .prepare(
      "SELECT b.worker_id, w.name, b.job_id, j.status, j.exit_code, j.failure_reason, j.finished_at FROM broadcast_jobs b JOIN jobs j ON j.id = b.job_id " +
        "LEFT JOIN workers w ON w.id = b.worker_id WHERE b.broadcast_id = ?1 ORDER BY w.name IS NULL, w.name, b.worker_id",
    )
    .bind(id)
    .raw<[string, string | null, string, JobStatus, number | null, string | null, number | null]>();
  return rows.map(([workerId, workerName, jobId, status, exitCode, failureReason, finishedAt]) => ({ workerId, workerName, jobId, status, exitCode, failureReason, finishedAt }));
}
