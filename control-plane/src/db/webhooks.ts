import { and, asc, count, desc, eq, getTableColumns, gt, inArray, lt, lte, min, ne, sql, type SQL } from "drizzle-orm";
import type { JobEventType } from "../../../protocol/index.ts";
import { inJson, type Db } from "./client.ts";
import { jobEvents, webhookDeliveries, webhooks } from "./schema.ts";

export type WebhookRow = typeof webhooks.$inferSelect;
export type DeliveryRow = typeof webhookDeliveries.$inferSelect;
export type JobEventRow = typeof jobEvents.$inferSelect;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** What the API shows of a webhook: never its secret. */
export const webhookView = (w: Omit<WebhookRow, "sealedSecret">) => ({
  id: w.id,
  project: w.project,
  url: w.url,
  events: w.events,
  created_by: w.createdBy,
  created_at: iso(w.createdAt)!,
});

export const deliveryView = (d: DeliveryRow) => ({
  id: d.id,
  event: d.event as JobEventType,
  event_id: d.eventId,
  status: d.status,
  attempts: d.attempts,
  last_status: d.lastStatus,
  last_error: d.lastError,
  next_at: d.status === "pending" ? iso(d.nextAt) : null,
  created_at: iso(d.createdAt)!,
  finished_at: iso(d.finishedAt),
});

export async function insertWebhook(db: Db, row: WebhookRow): Promise<void> {
  await db.insert(webhooks).values(row);
}

export async function countWebhooks(db: Db, project: string): Promise<number> {
  const [row] = await db.select({ n: count() }).from(webhooks).where(eq(webhooks.project, project));
  return row?.n ?? 0;
}

export function getWebhook(db: Db, id: string): Promise<WebhookRow | undefined> {
  return db.query.webhooks.findFirst({ where: eq(webhooks.id, id) });
}

/**
 * Webhooks, oldest first: `projects` null reads every one (the admin's view, the every-project
 * ones included), a list only those projects'; `project` narrows either.
 */
export function listWebhooks(db: Db, q: { projects: string[] | null; project?: string }) {
  const where: SQL[] = [];
  if (q.projects) where.push(inJson(webhooks.project, q.projects));
  if (q.project) where.push(eq(webhooks.project, q.project));
  const { sealedSecret: _, ...visible } = getTableColumns(webhooks);
  return db
    .select(visible)
    .from(webhooks)
    .where(and(...where))
    .orderBy(asc(webhooks.id));
}

/** Deletes a webhook and its deliveries together. */
export async function deleteWebhook(db: Db, id: string): Promise<boolean> {
  const [gone] = await db.batch([db.delete(webhooks).where(eq(webhooks.id, id)).returning({ id: webhooks.id }), db.delete(webhookDeliveries).where(eq(webhookDeliveries.webhookId, id))]);
  return gone.length > 0;
}

/** A webhook's deliveries, newest first; the cursor is the last id of the previous page. */
export async function listDeliveries(db: Db, webhookId: string, q: { cursor?: string; limit: number }) {
  const rows = await db
    .select()
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.webhookId, webhookId), q.cursor ? lt(webhookDeliveries.id, q.cursor) : undefined))
    .orderBy(desc(webhookDeliveries.id))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit);
  return { deliveries: page, nextCursor: rows.length > q.limit ? (page.at(-1)?.id ?? null) : null };
}

// The dispatcher's reads and writes.

/** Every webhook's routing facts (the table is small: at most WEBHOOK_MAX_PER_PROJECT per project). */
export function webhookRoutes(db: Db) {
  return db.select({ id: webhooks.id, project: webhooks.project, events: webhooks.events, createdAt: webhooks.createdAt }).from(webhooks);
}

export function eventsAfter(db: Db, cursor: number, limit: number): Promise<JobEventRow[]> {
  return db.select().from(jobEvents).where(gt(jobEvents.id, cursor)).orderBy(asc(jobEvents.id)).limit(limit);
}

export async function lastEventId(db: Db): Promise<number> {
  const [row] = await db.select({ id: sql<number | null>`max(${jobEvents.id})` }).from(jobEvents);
  return row?.id ?? 0;
}

/** Statements of at most this many rows stay under D1's 100 bound parameters (12 columns a row). */
const ROWS_PER_INSERT = 8;

/** Adds deliveries in one transaction; a (webhook, event) pair that has one already keeps it. */
export async function insertDeliveries(db: Db, rows: DeliveryRow[]): Promise<void> {
  const statements = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    statements.push(db.insert(webhookDeliveries).values(rows.slice(i, i + ROWS_PER_INSERT)).onConflictDoNothing());
  }
  const [first, ...rest] = statements;
  if (first) await db.batch([first, ...rest]);
}

/** Pending deliveries due by `now`, soonest first, with their webhook (null: deleted meanwhile). */
export function dueDeliveries(db: Db, now: number, limit: number) {
  return db
    .select({ delivery: webhookDeliveries, webhook: { id: webhooks.id, project: webhooks.project, url: webhooks.url, sealedSecret: webhooks.sealedSecret } })
    .from(webhookDeliveries)
    .leftJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
    .where(and(eq(webhookDeliveries.status, "pending"), lte(webhookDeliveries.nextAt, now)))
    .orderBy(asc(webhookDeliveries.nextAt))
    .limit(limit);
}

export type AttemptRecord = Pick<DeliveryRow, "id" | "status" | "nextAt" | "lastStatus" | "lastError" | "finishedAt">;

/** Records tried deliveries in one transaction; only a still-pending row changes. */
export async function recordAttempts(db: Db, records: AttemptRecord[]): Promise<void> {
  const [first, ...rest] = records.map((r) =>
    db
      .update(webhookDeliveries)
      .set({ status: r.status, nextAt: r.nextAt, lastStatus: r.lastStatus, lastError: r.lastError, finishedAt: r.finishedAt, attempts: sql`${webhookDeliveries.attempts} + 1` })
      .where(and(eq(webhookDeliveries.id, r.id), eq(webhookDeliveries.status, "pending"))),
  );
  if (first) await db.batch([first, ...rest]);
}

export async function deleteDeliveries(db: Db, ids: string[]): Promise<void> {
  if (ids.length) await db.delete(webhookDeliveries).where(inArray(webhookDeliveries.id, ids));
}

/** Deletes up to `limit` finished deliveries made before the one with id `before`; resolves with how many. */
export async function pruneDeliveries(db: Db, before: string, limit: number): Promise<number> {
  const oldest = db
    .select({ id: webhookDeliveries.id })
    .from(webhookDeliveries)
    .where(and(lt(webhookDeliveries.id, before), ne(webhookDeliveries.status, "pending")))
    .orderBy(asc(webhookDeliveries.id))
    .limit(limit);
  const gone = await db.delete(webhookDeliveries).where(inArray(webhookDeliveries.id, oldest)).returning({ id: webhookDeliveries.id });
  return gone.length;
}

/** When the soonest pending delivery is due; null when none is pending. */
export async function nextDueAt(db: Db): Promise<number | null> {
  const [row] = await db.select({ at: min(webhookDeliveries.nextAt) }).from(webhookDeliveries).where(eq(webhookDeliveries.status, "pending"));
  return row?.at ?? null;
}
