import { and, asc, desc, eq, lt, lte, max, sql } from "drizzle-orm";
import type { AutoscaleKind } from "../fleet/autoscale.ts";
import type { AttemptRecord } from "./webhooks.ts";
import type { Db } from "./client.ts";
import { autoscaleCalls, autoscaleHooks } from "./schema.ts";

export type AutoscaleHookRow = typeof autoscaleHooks.$inferSelect;
export type AutoscaleCallRow = typeof autoscaleCalls.$inferSelect;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export const callView = (c: AutoscaleCallRow) => ({
  id: c.id,
  kind: c.kind,
  status: c.status,
  attempts: c.attempts,
  last_status: c.lastStatus,
  last_error: c.lastError,
  next_at: c.status === "pending" ? iso(c.nextAt) : null,
  created_at: iso(c.createdAt)!,
  finished_at: iso(c.finishedAt),
  body: JSON.parse(c.payload) as Record<string, unknown>,
});

export async function getAutoscaleHook(db: Db, pool: string): Promise<AutoscaleHookRow | undefined> {
  const [row] = await db.select().from(autoscaleHooks).where(eq(autoscaleHooks.pool, pool));
  return row;
}

/** Sets a pool's hook; one made before keeps its id, creator and creation time. */
export async function putAutoscaleHook(db: Db, row: AutoscaleHookRow): Promise<void> {
  await db
    .insert(autoscaleHooks)
    .values(row)
    .onConflictDoUpdate({ target: autoscaleHooks.pool, set: { url: row.url, sealedSecret: row.sealedSecret, updatedAt: row.updatedAt } });
}

/** Deletes a pool's hook and its calls together. */
export async function deleteAutoscaleHook(db: Db, pool: string): Promise<boolean> {
  const [gone] = await db.batch([db.delete(autoscaleHooks).where(eq(autoscaleHooks.pool, pool)).returning({ pool: autoscaleHooks.pool }), db.delete(autoscaleCalls).where(eq(autoscaleCalls.pool, pool))]);
  return gone.length > 0;
}

/** A pool's latest calls, newest first. */
export function recentCalls(db: Db, pool: string, limit: number): Promise<AutoscaleCallRow[]> {
  return db.select().from(autoscaleCalls).where(eq(autoscaleCalls.pool, pool)).orderBy(desc(autoscaleCalls.id)).limit(limit);
}

/** When each kind was last called for a pool. */
export async function lastCallTimes(db: Db, pool: string): Promise<Partial<Record<AutoscaleKind, number>>> {
  const rows = await db.select({ kind: autoscaleCalls.kind, at: max(autoscaleCalls.createdAt) }).from(autoscaleCalls).where(eq(autoscaleCalls.pool, pool)).groupBy(autoscaleCalls.kind);
  return Object.fromEntries(rows.flatMap((r) => (r.at === null ? [] : [[r.kind, r.at]])));
}

/** Adds new calls, and forgets the pool's calls made before `keepAfter` (long finished: a call is retried only within the cooldown). */
export async function insertCalls(db: Db, pool: string, rows: AutoscaleCallRow[], keepAfter: number): Promise<void> {
  const [first, ...rest] = rows.map((r) => db.insert(autoscaleCalls).values(r));
  if (!first) return;
  await db.batch([first, ...rest, db.delete(autoscaleCalls).where(and(eq(autoscaleCalls.pool, pool), lt(autoscaleCalls.createdAt, keepAfter)))]);
}

/** A pool's pending calls due by `now`, oldest first. */
export function dueCalls(db: Db, pool: string, now: number): Promise<AutoscaleCallRow[]> {
  return db
    .select()
    .from(autoscaleCalls)
    .where(and(eq(autoscaleCalls.pool, pool), eq(autoscaleCalls.status, "pending"), lte(autoscaleCalls.nextAt, now)))
    .orderBy(asc(autoscaleCalls.id));
}

/** Records tried calls in one transaction, each try counted. */
export async function recordCallAttempts(db: Db, records: AttemptRecord[]): Promise<void> {
  const [first, ...rest] = records.map((r) =>
    db
      .update(autoscaleCalls)
      .set({ status: r.status, nextAt: r.nextAt, lastStatus: r.lastStatus, lastError: r.lastError, finishedAt: r.finishedAt, attempts: sql`${autoscaleCalls.attempts} + 1` })
      .where(and(eq(autoscaleCalls.id, r.id), eq(autoscaleCalls.status, "pending"))),
  );
  if (first) await db.batch([first, ...rest]);
}
