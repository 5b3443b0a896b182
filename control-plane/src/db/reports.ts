import { asc, eq, sql } from "drizzle-orm";
import type { Db } from "./client.ts";
import { attempts, workers } from "./schema.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** Every attempt of a job, oldest first, with the name of the worker it went to. */
export function jobAttempts(db: Db, jobId: string) {
  return db
    .select({
      attempt: attempts.attempt,
      workerId: attempts.workerId,
      workerName: workers.name,
      status: attempts.status,
      queuedAt: attempts.queuedAt,
      assignedAt: attempts.assignedAt,
      startedAt: attempts.startedAt,
      finishedAt: attempts.finishedAt,
      exitCode: attempts.exitCode,
      failureReason: attempts.failureReason,
      usage: attempts.usage,
    })
    .from(attempts)
    .leftJoin(workers, eq(workers.id, attempts.workerId))
    .where(eq(attempts.jobId, jobId))
    .orderBy(asc(attempts.attempt));
}

export type AttemptHistoryRow = Awaited<ReturnType<typeof jobAttempts>>[number];

/** The public shape of one attempt in a job's history. */
export function attemptView(a: AttemptHistoryRow) {
  return {
    attempt: a.attempt,
    worker_id: a.workerId,
    worker_name: a.workerName,
    status: a.status,
    queued_at: iso(a.queuedAt)!,
    assigned_at: iso(a.assignedAt)!,
    started_at: iso(a.startedAt),
    finished_at: iso(a.finishedAt),
    exit_code: a.exitCode,
    failure_reason: a.failureReason,
    usage: a.usage ?? null,
  };
}

export interface PoolSummary {
  pool: string;
  queued: number;
  assigned: number;
  running: number;
  workers: { online: number; draining: number; offline: number };
  slots: { total: number; in_use: number };
}

/**
 * What each pool holds now: unfinished jobs by state, workers by state, and the slots of its
 * connected workers. A pool exists while it has workers or unfinished jobs.
 */
export async function poolSummaries(db: Db): Promise<PoolSummary[]> {
  const [active, fleet, busy] = await Promise.all([
    db.all<{ pool: string; status: string; n: number }>(
      sql`SELECT pool, status, COUNT(*) AS n FROM jobs WHERE status IN ('queued', 'assigned', 'running') GROUP BY pool, status`,
    ),
    db.all<{ pool: string; online: number; draining: number; offline: number; slots: number }>(
      sql`SELECT pool,
            SUM(CASE WHEN online = 1 AND drain IS NULL THEN 1 ELSE 0 END) AS online,
            SUM(CASE WHEN online = 1 AND drain IS NOT NULL THEN 1 ELSE 0 END) AS draining,
            SUM(CASE WHEN online = 0 THEN 1 ELSE 0 END) AS offline,
            SUM(CASE WHEN online = 1 THEN slots ELSE 0 END) AS slots
          FROM workers GROUP BY pool`,
    ),
    db.all<{ pool: string; n: number }>(
      sql`SELECT w.pool AS pool, COUNT(*) AS n FROM attempts a JOIN workers w ON w.id = a.worker_id
          WHERE a.status IN ('assigned', 'running', 'canceling') GROUP BY w.pool`,
    ),
  ]);
  const names = [...new Set([...fleet.map((r) => r.pool), ...active.map((r) => r.pool)])].sort();
  return names.map((pool) => {
    const count = (status: string) => Number(active.find((r) => r.pool === pool && r.status === status)?.n ?? 0);
    const w = fleet.find((r) => r.pool === pool);
    return {
      pool,
      queued: count("queued"),
      assigned: count("assigned"),
      running: count("running"),
      workers: { online: Number(w?.online ?? 0), draining: Number(w?.draining ?? 0), offline: Number(w?.offline ?? 0) },
      slots: { total: Number(w?.slots ?? 0), in_use: Number(busy.find((r) => r.pool === pool)?.n ?? 0) },
    };
  });
}

/** Queued jobs of each project in a pool (counted on the queue index). */
export async function queuedByProject(db: Db, pool: string): Promise<Map<string, number>> {
  const rows = await db.all<{ project: string; n: number }>(sql`SELECT project, COUNT(*) AS n FROM jobs WHERE pool = ${pool} AND status = 'queued' GROUP BY project`);
  return new Map(rows.map((r) => [r.project, Number(r.n)]));
}

/** Whether a pool has ever had a worker or a job: only then has it a coordinator worth asking. */
export async function poolKnown(db: Db, pool: string): Promise<boolean> {
  const [row] = await db.all<{ known: number }>(sql`SELECT EXISTS (SELECT 1 FROM workers WHERE pool = ${pool}) OR EXISTS (SELECT 1 FROM jobs WHERE pool = ${pool}) AS known`);
  return Number(row?.known) === 1;
}

export interface PoolBucket {
  start: string;
  completed: number;
  failed: number;
  canceled: number;
  started: number;
  /** Median of queue entry → container start over the attempts that started in this bucket. */
  median_wait_ms: number | null;
}

/**
 * A pool's recent history in `buckets` equal buckets ending at the one holding `now`: jobs
 * finished by outcome, attempts started, and their median wait. Medians are computed in SQL,
 * so the answer stays one row per bucket however many jobs ran.
 */
export async function poolSeries(db: Db, pool: string, opts: { now: number; bucketMs: number; buckets: number }) {
  const end = (Math.floor(opts.now / opts.bucketMs) + 1) * opts.bucketMs;
  const start = end - opts.bucketMs * opts.buckets;
  const [finished, waits, used] = await Promise.all([
    db.all<{ b: number; status: string; n: number }>(
      sql`SELECT CAST((finished_at - ${start}) / ${opts.bucketMs} AS INTEGER) AS b, status, COUNT(*) AS n
          FROM jobs
          WHERE pool = ${pool} AND status IN ('completed', 'failed', 'canceled') AND finished_at >= ${start}
          GROUP BY b, status`,
    ),
    db.all<{ b: number; n: number; median: number }>(
      sql`WITH w AS (
            SELECT CAST((a.started_at - ${start}) / ${opts.bucketMs} AS INTEGER) AS b, a.started_at - a.queued_at AS wait_ms
            FROM attempts a JOIN jobs j ON j.id = a.job_id
            WHERE j.pool = ${pool} AND a.started_at >= ${start}
          ), r AS (
            SELECT b, wait_ms, ROW_NUMBER() OVER (PARTITION BY b ORDER BY wait_ms) AS rn, COUNT(*) OVER (PARTITION BY b) AS n FROM w
            UNION ALL
            SELECT -1, wait_ms, ROW_NUMBER() OVER (ORDER BY wait_ms), COUNT(*) OVER () FROM w
          )
          SELECT b, MAX(n) AS n, AVG(wait_ms) AS median FROM r WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY b`,
    ),
    // What the attempts that ended in the window consumed, as their agents reported it.
    db.all<{ n: number; cpu: number; gpu: number; wall: number }>(
      sql`SELECT COUNT(*) AS n, coalesce(SUM(a.usage ->> 'cpu_s'), 0) AS cpu, coalesce(SUM(a.usage ->> 'gpu_s'), 0) AS gpu, coalesce(SUM(a.usage ->> 'wall_s'), 0) AS wall
          FROM attempts a JOIN jobs j ON j.id = a.job_id
          WHERE j.pool = ${pool} AND a.finished_at >= ${start} AND a.usage IS NOT NULL`,
    ),
  ]);
  const round = (x: number) => Math.round(Number(x) * 1000) / 1000;
  const u = used[0] ?? { n: 0, cpu: 0, gpu: 0, wall: 0 };
  const series: PoolBucket[] = Array.from({ length: opts.buckets }, (_, i) => ({
    start: new Date(start + i * opts.bucketMs).toISOString(),
    completed: 0,
    failed: 0,
    canceled: 0,
    started: 0,
    median_wait_ms: null,
  }));
  for (const row of finished) {
    const bucket = series[Number(row.b)];
    if (bucket && (row.status === "completed" || row.status === "failed" || row.status === "canceled")) bucket[row.status] = Number(row.n);
  }
  let overall: { started: number; median_wait_ms: number | null } = { started: 0, median_wait_ms: null };
  for (const row of waits) {
    const value = { started: Number(row.n), median_wait_ms: Math.round(Number(row.median)) };
    if (Number(row.b) === -1) overall = value;
    else Object.assign(series[Number(row.b)] ?? {}, value);
  }
  return {
    from: new Date(start).toISOString(),
    to: new Date(end).toISOString(),
    bucket_s: opts.bucketMs / 1000,
    finished: series.reduce((n, b) => n + b.completed + b.failed + b.canceled, 0),
    started: overall.started,
    median_wait_ms: overall.median_wait_ms,
    usage: { attempts: Number(u.n), cpu_s: round(u.cpu), gpu_s: round(u.gpu), wall_s: round(u.wall) },
    series,
  };
}
