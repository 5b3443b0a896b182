import { and, desc, eq, lt, type SQL } from "drizzle-orm";
import { inJson, type Db } from "./client.ts";
import { auditEvents } from "./schema.ts";

export type AuditRow = typeof auditEvents.$inferSelect;

export function insertAudit(db: Db, row: AuditRow) {
  return db.insert(auditEvents).values(row);
}

/** Newest first; the cursor is the last id of the previous page. `projects` null: every project. */
export async function listAudit(db: Db, q: { projects: string[] | null; project?: string; actor?: string; action?: string; cursor?: string; limit: number }) {
  const where: SQL[] = [];
  if (q.projects) where.push(inJson(auditEvents.project, q.projects));
  if (q.project) where.push(eq(auditEvents.project, q.project));
  if (q.actor) where.push(eq(auditEvents.actor, q.actor));
  if (q.action) where.push(eq(auditEvents.action, q.action));
  if (q.cursor) where.push(lt(auditEvents.id, q.cursor));
  const rows = await db
    .select()
    .from(auditEvents)
    .where(and(...where))
    .orderBy(desc(auditEvents.id))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit);
  return { events: page, nextCursor: rows.length > q.limit ? (page.at(-1)?.id ?? null) : null };
}

export const auditView = (r: AuditRow) => ({
  id: r.id,
  at: new Date(r.at).toISOString(),
  actor: r.actor,
  action: r.action,
  project: r.project,
  target: r.target,
  detail: r.detail ?? {},
  ip: r.ip,
});
