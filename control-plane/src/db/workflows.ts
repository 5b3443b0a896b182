import type { DependencyCondition, JobStatus } from "../../../protocol/index.ts";
import type { ParentState } from "../workflows/dependencies.ts";
import { expiryFrom } from "./attempts.ts";
import type { Db } from "./client.ts";

/*
 * The workflow side of the jobs table: dependency edges, arrays, and the holds (`deps`,
 * `retry`) that keep a queued job from the scheduler. Set-based: one statement whatever the
 * number of jobs, their ids bound as one JSON parameter.
 */

export interface EdgeRow {
  child: string;
  parent: string;
  parentKind: "job" | "array";
  condition: DependencyCondition;
}

const ids = (list: readonly string[]) => JSON.stringify([...new Set(list)]);

/** Every edge of these children. */
export async function edgesOf(db: Db, children: readonly string[]): Promise<EdgeRow[]> {
  if (children.length === 0) return [];
  const rows = await db.$client
    .prepare("SELECT child, parent, parent_kind, condition FROM job_deps WHERE child IN (SELECT value FROM json_each(?1))")
    .bind(ids(children))
    .raw<[string, string, EdgeRow["parentKind"], DependencyCondition]>();
  return rows.map(([child, parent, parentKind, condition]) => ({ child, parent, parentKind, condition }));
}

/** The children of these parents (jobs or arrays), with their status: for a job's dependency view. */
export async function childrenOf(db: Db, parents: readonly string[]): Promise<{ child: string; parent: string; condition: DependencyCondition; status: JobStatus }[]> {
  if (parents.length === 0) return [];
  const rows = await db.$client
    .prepare("SELECT d.child, d.parent, d.condition, j.status FROM job_deps d JOIN jobs j ON j.id = d.child WHERE d.parent IN (SELECT value FROM json_each(?1)) ORDER BY d.child LIMIT 1000")
    .bind(ids(parents))
    .raw<[string, string, DependencyCondition, JobStatus]>();
  return rows.map(([child, parent, condition, status]) => ({ child, parent, condition, status }));
}

/** What each parent is now: a job's status; an array's tasks counted by status. Parents that do not exist are left out. */
export async function parentStates(db: Db, edges: readonly Pick<EdgeRow, "parent" | "parentKind">[]): Promise<Map<string, ParentState>> {
  const jobs = edges.filter((e) => e.parentKind === "job").map((e) => e.parent);
  const arrays = edges.filter((e) => e.parentKind === "array").map((e) => e.parent);
  const states = new Map<string, ParentState>();
  const [jobRows, arrayRows] = await Promise.all([
    jobs.length ? db.$client.prepare("SELECT id, status FROM jobs WHERE id IN (SELECT value FROM json_each(?1))").bind(ids(jobs)).raw<[string, JobStatus]>() : [],
    arrays.length
      ? db.$client
          .prepare("SELECT a.id, a.count, j.status, count(j.id) FROM job_arrays a LEFT JOIN jobs j ON j.array_id = a.id WHERE a.id IN (SELECT value FROM json_each(?1)) GROUP BY a.id, j.status")
          .bind(ids(arrays))
          .raw<[string, number, JobStatus | null, number]>()
      : [],
  ]);
  for (const [id, status] of jobRows) states.set(id, { kind: "job", status });
  for (const [id, count, status, n] of arrayRows) {
    const s = (states.get(id) as Extract<ParentState, { kind: "array" }> | undefined) ?? { kind: "array", count, byStatus: {} };
    if (status !== null) s.byStatus[status] = n;
    states.set(id, s);
  }
  return states;
}

export interface MovedJob {
  id: string;
  pool: string;
  project: string;
}

const movedRows = (rows: [string, string, string][]): MovedJob[] => rows.map(([id, pool, project]) => ({ id, pool, project }));

/** Jobs whose parents all ended as asked: ready for the scheduler, their queue wait (and queue_ttl_s) counted from now. */
export async function releaseDependents(db: Db, children: readonly string[], now: number): Promise<MovedJob[]> {
  if (children.length === 0) return [];
  const rows = await db.$client
    .prepare(
      `UPDATE jobs SET hold = NULL, queued_at = ?2, expires_at = ${expiryFrom("?2")} ` +
        "WHERE id IN (SELECT value FROM json_each(?1)) AND +status = 'queued' AND hold = 'deps' RETURNING id, pool, project",
    )
    .bind(ids(children), now)
    .raw<[string, string, string]>();
  return movedRows(rows);
}

/** Fails queued jobs a parent of which can never end as they need: `dependency_failed`, with the message naming it. */
export async function failDependents(db: Db, failures: readonly { id: string; message: string }[], now: number): Promise<MovedJob[]> {
  if (failures.length === 0) return [];
  const rows = await db.$client
    .prepare(
      "UPDATE jobs SET status = 'failed', failure_reason = 'dependency_failed', failure_message = v.message, finished_at = ?2, hold = NULL, expires_at = NULL " +
        "FROM (SELECT value ->> 0 AS id, value ->> 1 AS message FROM json_each(?1)) AS v WHERE jobs.id = v.id AND +jobs.status = 'queued' RETURNING jobs.id, jobs.pool, jobs.project",
    )
    .bind(JSON.stringify(failures.map((f) => [f.id, f.message])), now)
    .raw<[string, string, string]>();
  return movedRows(rows);
}

/**
 * Children still waiting on their parents whose parent (a job, or a task's array) reached a
 * final status in the events `(after, upTo]` of `job_events`.
 */
export async function waitingChildrenOfEvents(db: Db, after: number, upTo: number): Promise<string[]> {
  const rows = await db.$client
    .prepare(
      "WITH ended AS (SELECT DISTINCT e.job_id FROM job_events e WHERE e.id > ?1 AND e.id <= ?2 AND e.status IN ('completed', 'failed', 'canceled')), " +
        "parents AS (SELECT job_id AS parent FROM ended UNION SELECT j.array_id FROM ended JOIN jobs j ON j.id = ended.job_id WHERE j.array_id IS NOT NULL) " +
        "SELECT DISTINCT d.child FROM parents p JOIN job_deps d ON d.parent = p.parent JOIN jobs c ON c.id = d.child WHERE c.status = 'queued' AND c.hold = 'deps'",
    )
    .bind(after, upTo)
    .raw<[string]>();
  return rows.map(([id]) => id);
}

export async function lastEventId(db: Db): Promise<number> {
  const row = await db.$client.prepare("SELECT coalesce(max(id), 0) FROM job_events").raw<[number]>();
  return row[0]?.[0] ?? 0;
}

/** Jobs waiting on their parents with ids after `after`, oldest first, at most `limit`: the engine's backstop pages through them. */
export async function waitingOnParents(db: Db, after: string, limit: number): Promise<string[]> {
  const rows = await db.$client
    .prepare("SELECT id FROM jobs WHERE hold = 'deps' AND id > ?1 AND +status = 'queued' ORDER BY id LIMIT ?2")
    .bind(after, limit)
    .raw<[string]>();
  return rows.map(([id]) => id);
}

/** Whether any job waits on its parents (the workflow engine keeps its backstop alarm while one does). */
export async function anyWaitingOnParents(db: Db): Promise<boolean> {
  const row = await db.$client.prepare("SELECT 1 FROM jobs WHERE hold = 'deps' AND +status = 'queued' LIMIT 1").raw();
  return row.length > 0;
}

/** Retries whose backoff is over, in a pool: back in the queue. Returns their projects. */
export async function releaseRetries(db: Db, pool: string, now: number): Promise<string[]> {
  const rows = await db.$client
    .prepare(
      `UPDATE jobs SET hold = NULL, not_before = NULL, queued_at = ?2, expires_at = ${expiryFrom("?2")} ` +
        "WHERE id IN (SELECT id FROM jobs WHERE hold = 'retry' AND not_before <= ?2) AND pool = ?1 AND +status = 'queued' RETURNING project",
    )
    .bind(pool, now)
    .raw<[string]>();
  return rows.map(([p]) => p);
}

/** Ready jobs past their queue_ttl_s in a pool, at most `limit`, with what they need. */
export async function expiredQueued(db: Db, pool: string, now: number, limit: number): Promise<{ id: string; spec: string }[]> {
  const rows = await db.$client
    .prepare("SELECT id, spec FROM jobs WHERE pool = ?1 AND status = 'queued' AND expires_at IS NOT NULL AND expires_at <= ?2 AND hold IS NULL LIMIT ?3")
    .bind(pool, now, limit)
    .raw<[string, string]>();
  return rows.map(([id, spec]) => ({ id, spec }));
}

/** Fails jobs that waited out their queue_ttl_s: `unschedulable`, saying why no worker took them. */
/** Queued jobs of a pool pinned to a worker (the `worker` field), at most `limit`. */
export async function queuedPinnedTo(db: Db, pool: string, workerId: string, limit: number): Promise<string[]> {
  const rows = await db.$client
    .prepare("SELECT id FROM jobs WHERE pool = ?1 AND status = 'queued' AND json_extract(spec, '$.worker') = ?2 LIMIT ?3")
    .bind(pool, workerId, limit)
    .raw<[string]>();
  return rows.map((r) => r[0]);
}

export async function failUnschedulable(db: Db, failures: readonly { id: string; message: string }[], now: number): Promise<MovedJob[]> {
  if (failures.length === 0) return [];
  const rows = await db.$client
    .prepare(
      "UPDATE jobs SET status = 'failed', failure_reason = 'unschedulable', failure_message = v.message, finished_at = ?2, expires_at = NULL " +
        "FROM (SELECT value ->> 0 AS id, value ->> 1 AS message FROM json_each(?1)) AS v WHERE jobs.id = v.id AND +jobs.status = 'queued' AND jobs.hold IS NULL RETURNING jobs.id, jobs.pool, jobs.project",
    )
    .bind(JSON.stringify(failures.map((f) => [f.id, f.message])), now)
    .raw<[string, string, string]>();
  return movedRows(rows);
}

export interface ArrayRow {
  id: string;
  project: string;
  pool: string;
  name: string | null;
  count: number;
  submittedBy: string;
  createdAt: number;
}

export async function getArray(db: Db, id: string): Promise<ArrayRow | undefined> {
  const [row] = await db.$client
    .prepare("SELECT id, project, pool, name, count, submitted_by, created_at FROM job_arrays WHERE id = ?1")
    .bind(id)
    .raw<[string, string, string, string | null, number, string, number]>();
  return row && { id: row[0], project: row[1], pool: row[2], name: row[3], count: row[4], submittedBy: row[5], createdAt: row[6] };
}

/** Failed indices an array summary lists at most. */
export const FAILED_INDICES_SHOWN = 1000;

/** An array's tasks counted by status, its failed indices (lowest first, bounded) and its task 0. */
export async function arrayProgress(db: Db, id: string): Promise<{ byStatus: Partial<Record<JobStatus, number>>; failedIndices: number[]; first: string | null }> {
  const [counts, failed, first] = await db.$client.batch([
    db.$client.prepare("SELECT status, count(*) FROM jobs WHERE array_id = ?1 GROUP BY status").bind(id),
    db.$client.prepare("SELECT array_index FROM jobs WHERE array_id = ?1 AND status = 'failed' ORDER BY array_index LIMIT ?2").bind(id, FAILED_INDICES_SHOWN),
    db.$client.prepare("SELECT id FROM jobs WHERE array_id = ?1 AND array_index = 0").bind(id),
  ]);
  const byStatus: Partial<Record<JobStatus, number>> = {};
  for (const r of counts!.results as { status: JobStatus; "count(*)": number }[]) byStatus[r.status] = r["count(*)"];
  return {
    byStatus,
    failedIndices: (failed!.results as { array_index: number }[]).map((r) => r.array_index),
    first: (first!.results as { id: string }[])[0]?.id ?? null,
  };
}

/** An array's unfinished tasks that hold attempts (assigned or running), for their agents to be told. */
export async function activeTasks(db: Db, id: string): Promise<string[]> {
  const rows = await db.$client.prepare("SELECT id FROM jobs WHERE array_id = ?1 AND status IN ('assigned', 'running')").bind(id).raw<[string]>();
  return rows.map(([j]) => j);
}

/** Cancels an array's queued tasks in one statement; returns how many. */
export async function cancelQueuedTasks(db: Db, id: string, now: number): Promise<number> {
  const rows = await db.$client
    .prepare("UPDATE jobs SET status = 'canceled', finished_at = ?2, failure_message = 'canceled with its array', hold = NULL, expires_at = NULL WHERE array_id = ?1 AND status = 'queued' RETURNING id")
    .bind(id, now)
    .raw();
  return rows.length;
}
