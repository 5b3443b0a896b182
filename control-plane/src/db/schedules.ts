import { and, count, desc, eq, inArray, lt, lte, min, type SQL } from "drizzle-orm";
import type { Principal } from "../auth/principal.ts";
import type { Role } from "../auth/roles.ts";
import { inJson, type Db } from "./client.ts";
import { jobs, members, scheduleRuns, schedules, users } from "./schema.ts";

export type ScheduleRow = typeof schedules.$inferSelect;
export type ScheduleRunRow = typeof scheduleRuns.$inferSelect;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export const scheduleView = (s: ScheduleRow) => ({
  id: s.id,
  project: s.project,
  name: s.name,
  cron: s.cron,
  timezone: s.timezone,
  job: s.job,
  overlap: s.overlap,
  paused: s.paused,
  next_run_at: iso(s.nextRunAt),
  last_run_at: iso(s.lastRunAt),
  submitted_by: s.submittedBy,
  created_by: s.createdBy,
  created_at: iso(s.createdAt)!,
  updated_at: iso(s.updatedAt)!,
});

export const scheduleRunView = (r: ScheduleRunRow) => ({
  tick_at: iso(r.tickAt)!,
  outcome: r.outcome,
  job_id: r.jobId,
  message: r.message,
  at: iso(r.at)!,
});

/** Inserts a schedule; null when its project already has one of that name. */
export async function insertSchedule(db: Db, row: ScheduleRow): Promise<ScheduleRow | null> {
  const [inserted] = await db.insert(schedules).values(row).onConflictDoNothing().returning();
  return inserted ?? null;
}

export function getSchedule(db: Db, id: string): Promise<ScheduleRow | undefined> {
  return db.query.schedules.findFirst({ where: eq(schedules.id, id) });
}

export async function countSchedules(db: Db, project: string): Promise<number> {
  const [row] = await db.select({ n: count() }).from(schedules).where(eq(schedules.project, project));
  return row?.n ?? 0;
}

/** Newest first; `projects` null reads every project (the admin); the cursor is the last id of the previous page. */
export async function listSchedules(db: Db, q: { projects: string[] | null; project?: string; limit: number; cursor?: string }) {
  const where: SQL[] = [];
  if (q.projects) where.push(inJson(schedules.project, q.projects));
  if (q.project) where.push(eq(schedules.project, q.project));
  if (q.cursor) where.push(lt(schedules.id, q.cursor));
  const rows = await db
    .select()
    .from(schedules)
    .where(and(...where))
    .orderBy(desc(schedules.id))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit);
  return { schedules: page, nextCursor: rows.length > q.limit ? (page.at(-1)?.id ?? null) : null };
}

/** Saves a changed schedule; undefined when it was deleted meanwhile, null when the new name is taken. */
export async function updateSchedule(db: Db, id: string, change: Partial<Omit<ScheduleRow, "id" | "project" | "createdBy" | "createdAt">>): Promise<ScheduleRow | null | undefined> {
  try {
    const [row] = await db.update(schedules).set(change).where(eq(schedules.id, id)).returning();
    return row;
  } catch (err) {
    if (String((err as Error).message).includes("UNIQUE")) return null;
    throw err;
  }
}

/** Deletes a schedule with its runs; its jobs stay. */
export async function deleteSchedule(db: Db, id: string): Promise<boolean> {
  const [gone] = await db.batch([db.delete(schedules).where(eq(schedules.id, id)).returning({ id: schedules.id }), db.delete(scheduleRuns).where(eq(scheduleRuns.scheduleId, id))]);
  return gone.length > 0;
}

/** A schedule's runs, newest tick first; the cursor is the last tick (ms) of the previous page. */
export async function listRuns(db: Db, scheduleId: string, q: { limit: number; cursor?: number }) {
  const rows = await db
    .select()
    .from(scheduleRuns)
    .where(and(eq(scheduleRuns.scheduleId, scheduleId), q.cursor !== undefined ? lt(scheduleRuns.tickAt, q.cursor) : undefined))
    .orderBy(desc(scheduleRuns.tickAt))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit);
  return { runs: page, nextCursor: rows.length > q.limit ? String(page.at(-1)!.tickAt) : null };
}

// The schedule clock's reads and writes.

/** Unpaused schedules due by `now`, the longest overdue first. */
export function dueSchedules(db: Db, now: number, limit: number): Promise<ScheduleRow[]> {
  return db
    .select()
    .from(schedules)
    .where(and(eq(schedules.paused, false), lte(schedules.nextRunAt, now)))
    .orderBy(schedules.nextRunAt)
    .limit(limit);
}

/** When the soonest unpaused schedule is due; null when none is. */
export async function earliestNextRun(db: Db): Promise<number | null> {
  const [row] = await db.select({ at: min(schedules.nextRunAt) }).from(schedules).where(eq(schedules.paused, false));
  return row?.at ?? null;
}

export function getRun(db: Db, scheduleId: string, tickAt: number): Promise<ScheduleRunRow | undefined> {
  return db.query.scheduleRuns.findFirst({ where: and(eq(scheduleRuns.scheduleId, scheduleId), eq(scheduleRuns.tickAt, tickAt)) });
}

/** Records a tick's run; a tick recorded already keeps its first record. */
export async function insertRun(db: Db, row: ScheduleRunRow): Promise<void> {
  await db.insert(scheduleRuns).values(row).onConflictDoNothing();
}

/**
 * Moves a schedule past a tick, unless it changed since it was read (an edit, a pause or a
 * resume set next_run_at themselves): only a row still due at `dueAt` moves.
 */
export async function advanceSchedule(db: Db, id: string, dueAt: number, next: { nextRunAt: number | null; lastRunAt: number }): Promise<void> {
  await db
    .update(schedules)
    .set(next)
    .where(and(eq(schedules.id, id), eq(schedules.nextRunAt, dueAt), eq(schedules.paused, false)));
}

/** A job of the schedule that has not finished (queued, assigned or running), if any. */
export async function unfinishedJobOf(db: Db, scheduleId: string): Promise<string | null> {
  const [row] = await db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(eq(jobs.scheduleId, scheduleId), inArray(jobs.status, ["queued", "assigned", "running"])))
    .limit(1);
  return row?.id ?? null;
}

/**
 * The principal a schedule's jobs are submitted as: its submitter with the memberships they
 * hold now (null when the user is gone). `tokenId` is the schedule's id: its jobs' keys are its own.
 */
export async function submitterOf(db: Db, schedule: Pick<ScheduleRow, "id" | "submittedBy">): Promise<Principal | null> {
  if (schedule.submittedBy === "admin") return { kind: "admin", tokenId: "admin", name: "admin" };
  const user = await db.query.users.findFirst({ where: eq(users.name, schedule.submittedBy) });
  if (!user) return null;
  const roles = await db.select({ project: members.project, role: members.role }).from(members).where(eq(members.userId, user.id));
  return { kind: "user", tokenId: schedule.id, userId: user.id, name: user.name, roles: new Map<string, Role>(roles.map((r) => [r.project, r.role])), expiresAt: null };
}
