import { and, asc, eq } from "drizzle-orm";
import type { Role, Standing } from "../auth/roles.ts";
import { inJson, type Db } from "./client.ts";
import type { QuotaUsage } from "../quotas.ts";
import { members, projects, users, type Quotas, type Retention } from "./schema.ts";
import { effectiveRetention, type RetentionDays } from "../retention/policy.ts";

export type ProjectRow = typeof projects.$inferSelect;
export type UserRow = typeof users.$inferSelect;

const iso = (ms: number) => new Date(ms).toISOString();

export const userView = (u: UserRow) => ({ id: u.id, name: u.name, created_at: iso(u.createdAt) });

export async function insertUser(db: Db, row: UserRow): Promise<UserRow | null> {
  const [inserted] = await db.insert(users).values(row).onConflictDoNothing().returning();
  return inserted ?? null;
}

/** A user by id (`u_…`) or by name. */
export function findUser(db: Db, idOrName: string): Promise<UserRow | undefined> {
  return db.query.users.findFirst({ where: idOrName.startsWith("u_") ? eq(users.id, idOrName) : eq(users.name, idOrName) });
}

export function listUsers(db: Db) {
  return db.select().from(users).orderBy(asc(users.name));
}

export async function insertProject(db: Db, row: ProjectRow): Promise<ProjectRow | null> {
  const [inserted] = await db.insert(projects).values(row).onConflictDoNothing().returning();
  return inserted ?? null;
}

export function getProject(db: Db, name: string): Promise<ProjectRow | undefined> {
  return db.query.projects.findFirst({ where: eq(projects.name, name) });
}

/** Every project, or those named; by name. */
export function listProjects(db: Db, names: string[] | null) {
  return db
    .select()
    .from(projects)
    .where(names ? inJson(projects.name, names) : undefined)
    .orderBy(asc(projects.name));
}

export async function updateProject(db: Db, name: string, change: { quotas?: Quotas; weight?: number; retention?: Retention }): Promise<ProjectRow | undefined> {
  // An empty change is a read: drizzle has nothing to SET.
  if (change.quotas === undefined && change.weight === undefined && change.retention === undefined) return getProject(db, name);
  const [row] = await db.update(projects).set(change).where(eq(projects.name, name)).returning();
  return row;
}

export async function putMember(db: Db, project: string, userId: string, role: Role, now: number) {
  await db
    .insert(members)
    .values({ project, userId, role, createdAt: now })
    .onConflictDoUpdate({ target: [members.project, members.userId], set: { role } });
}

export async function deleteMember(db: Db, project: string, userId: string): Promise<boolean> {
  const gone = await db.delete(members).where(and(eq(members.project, project), eq(members.userId, userId))).returning({ userId: members.userId });
  return gone.length > 0;
}

export function listMembers(db: Db, project: string) {
  return db
    .select({ userId: members.userId, name: users.name, role: members.role, createdAt: members.createdAt })
    .from(members)
    .innerJoin(users, eq(users.id, members.userId))
    .where(eq(members.project, project))
    .orderBy(asc(users.name));
}

export const memberView = (m: { userId: string; name: string; role: Role; createdAt: number }) => ({ user_id: m.userId, user: m.name, role: m.role, added_at: iso(m.createdAt) });

/** What each project holds now, against its quotas. */
const USAGE_SQL =
  "SELECT p.name, " +
  "(SELECT count(*) FROM jobs j WHERE j.project = p.name AND j.status IN ('assigned', 'running')), " +
  "(SELECT count(*) FROM jobs j WHERE j.project = p.name AND j.status = 'queued'), " +
  "(SELECT coalesce(sum(json_extract(j.spec, '$.requirements.gpus')), 0) FROM jobs j WHERE j.project = p.name AND j.status IN ('assigned', 'running')), " +
  "(SELECT coalesce(sum(d.size), 0) FROM datasets d WHERE d.project = p.name) " +
  "FROM projects p WHERE p.name IN (SELECT value FROM json_each(?1))";

/** Usage of each named project, in one statement. */
export async function usageOf(db: Db, names: string[]): Promise<Map<string, QuotaUsage>> {
  if (names.length === 0) return new Map();
  const rows = await db.$client.prepare(USAGE_SQL).bind(JSON.stringify(names)).raw<[string, number, number, number, number]>();
  return new Map(rows.map((r) => [r[0], { running_jobs: r[1], queued_jobs: r[2], gpus: r[3], dataset_bytes: r[4] }]));
}

export const projectView = (p: ProjectRow, usage: QuotaUsage | undefined, role: Standing, retentionDefaults: RetentionDays) => ({
  name: p.name,
  quotas: p.quotas,
  weight: p.weight,
  usage: usage ?? { running_jobs: 0, queued_jobs: 0, gpus: 0, dataset_bytes: 0 },
  retention: effectiveRetention(retentionDefaults, p.retention),
  role,
  created_at: iso(p.createdAt),
});
