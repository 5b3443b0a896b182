import type { Db } from "../db/client.ts";
import type { LiveNeeds } from "./policy.ts";

/** The archived log a job's agent uploads with its artifacts: it goes with the logs, not the artifacts. */
export const JOB_LOG_ARTIFACT = ".gridx/job.log";

/** `logs`: log rows and segments and the archived log; `artifacts`: the other artifacts; `job`: everything the job left. */
export type PurgeWhat = "logs" | "artifacts" | "job";

/** R2's most keys per delete call. */
const DELETE_KEYS = 1000;
const LIVE = "('queued', 'assigned', 'running')";

/**
 * What still needs the finished job `j` (policy.ts LiveNeeds), as SQL on a row `j` of jobs.
 * The readers' subquery names no column of `j`, so SQLite reads the unfinished jobs' inputs once
 * per statement, not once per job.
 */
export const LIVE_NEEDS = {
  dependents: `EXISTS (SELECT 1 FROM job_deps d JOIN jobs c ON c.id = d.child WHERE d.parent IN (j.id, j.array_id) AND c.status IN ${LIVE})`,
  arrayTasks: `(j.array_id IS NOT NULL AND EXISTS (SELECT 1 FROM jobs t WHERE t.array_id = j.array_id AND t.status IN ${LIVE}))`,
  readers: `j.id IN (SELECT i.value ->> '$.artifact.job' FROM jobs r, json_each(r.spec, '$.inputs') i WHERE r.status IN ${LIVE})`,
  attempts: `EXISTS (SELECT 1 FROM attempts a WHERE a.job_id = j.id AND a.status IN ('assigned', 'running', 'canceling'))`,
} as const;
export const ANY_LIVE_NEED = `(${Object.values(LIVE_NEEDS).join(" OR ")})`;

/** What still needs one job (all false for a job that does not exist). */
export async function liveNeedsOf(db: Db, id: string): Promise<LiveNeeds> {
  const names = Object.keys(LIVE_NEEDS) as (keyof LiveNeeds)[];
  const row = await db.$client
    .prepare(`SELECT ${names.map((n) => LIVE_NEEDS[n]).join(", ")} FROM jobs j WHERE j.id = ?1`)
    .bind(id)
    .raw<number[]>();
  return Object.fromEntries(names.map((n, i) => [n, Boolean(row[0]?.[i])])) as unknown as LiveNeeds;
}

const IDS = "(SELECT value FROM json_each(?1))";
const OBJECT_KEYS: Record<PurgeWhat, string> = {
  logs: `SELECT key FROM log_segments WHERE job_id IN ${IDS} UNION ALL SELECT key FROM artifacts WHERE job_id IN ${IDS} AND name = ?2`,
  artifacts: `SELECT key FROM artifacts WHERE job_id IN ${IDS} AND name != ?2`,
  job: `SELECT key FROM log_segments WHERE job_id IN ${IDS} UNION ALL SELECT key FROM artifacts WHERE job_id IN ${IDS}`,
};
const ROWS: Record<PurgeWhat, string[]> = {
  logs: [
    `DELETE FROM log_chunks WHERE job_id IN ${IDS}`,
    `DELETE FROM log_segments WHERE job_id IN ${IDS}`,
    `DELETE FROM artifacts WHERE job_id IN ${IDS} AND name = ?2`,
    `UPDATE jobs SET logs_purged_at = ?3 WHERE id IN ${IDS}`,
  ],
  artifacts: [`DELETE FROM artifacts WHERE job_id IN ${IDS} AND name != ?2`, `UPDATE jobs SET artifacts_purged_at = ?3 WHERE id IN ${IDS}`],
  job: [
    `DELETE FROM log_chunks WHERE job_id IN ${IDS}`,
    `DELETE FROM log_segments WHERE job_id IN ${IDS}`,
    `DELETE FROM artifacts WHERE job_id IN ${IDS}`,
    `DELETE FROM attempts WHERE job_id IN ${IDS}`,
    `DELETE FROM job_events WHERE job_id IN ${IDS}`,
    // Its own edges; a child's edge to it stays, the child's record of what it waited on.
    `DELETE FROM job_deps WHERE child IN ${IDS}`,
    `DELETE FROM port_links WHERE job_id IN ${IDS}`,
    `DELETE FROM port_sessions WHERE job_id IN ${IDS}`,
    // An array goes with its last task.
    `DELETE FROM job_arrays WHERE id IN (SELECT array_id FROM jobs WHERE id IN ${IDS} AND array_id IS NOT NULL) AND NOT EXISTS (SELECT 1 FROM jobs t WHERE t.array_id = job_arrays.id AND t.id NOT IN ${IDS})`,
    // A broadcast goes with its last job, as an array does.
    `DELETE FROM broadcasts WHERE id IN (SELECT broadcast_id FROM broadcast_jobs WHERE job_id IN ${IDS}) AND NOT EXISTS (SELECT 1 FROM broadcast_jobs b WHERE b.broadcast_id = broadcasts.id AND b.job_id NOT IN ${IDS})`,
    `DELETE FROM broadcast_jobs WHERE job_id IN ${IDS}`,
    `DELETE FROM jobs WHERE id IN ${IDS}`,
  ],
};

/**
 * Deletes `what` of these finished jobs: R2 objects first, then D1's rows in one batch, so a
 * failure between leaves rows that the next try deletes again (deleting a missing object is no
 * error), never objects nothing points to. The one deletion path of both the retention sweep
 * and DELETE /v1/jobs/:id; the caller has checked the jobs may go. Returns the objects deleted.
 */
export async function purgeJobs(store: { db: Db; bucket: R2Bucket }, ids: readonly string[], what: PurgeWhat, now = Date.now()): Promise<number> {
  if (ids.length === 0) return 0;
  const d1 = store.db.$client;
  const params = [JSON.stringify(ids), JOB_LOG_ARTIFACT, now];
  // D1 refuses more bindings than a statement names.
  const statement = (q: string) => d1.prepare(q).bind(...params.slice(0, highestParam(q)));
  const keys = (await statement(OBJECT_KEYS[what]).raw<[string]>()).map((r) => r[0]);
  for (let i = 0; i < keys.length; i += DELETE_KEYS) await store.bucket.delete(keys.slice(i, i + DELETE_KEYS));
  await d1.batch(ROWS[what].map(statement));
  return keys.length;
}

const highestParam = (q: string) => Math.max(...[...q.matchAll(/\?(\d)/g)].map((m) => Number(m[1])));
