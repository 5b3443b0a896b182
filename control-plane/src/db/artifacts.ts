import { and, asc, eq } from "drizzle-orm";
import type { Db } from "./client.ts";
import { artifacts } from "./schema.ts";

export type ArtifactRow = typeof artifacts.$inferSelect;

export function recordArtifacts(db: Db, rows: (typeof artifacts.$inferInsert)[]) {
  if (rows.length === 0) return Promise.resolve();
  const [first, ...rest] = rows.map((r) => db.insert(artifacts).values(r).onConflictDoUpdate({ target: [artifacts.jobId, artifacts.attempt, artifacts.name], set: { size: r.size, sha256: r.sha256, key: r.key, createdAt: r.createdAt } }));
  return db.batch([first!, ...rest]).then(() => undefined);
}

/** The artifacts of a job's attempt (its latest, normally). */
export function listArtifacts(db: Db, jobId: string, attempt: number) {
  return db.select().from(artifacts).where(and(eq(artifacts.jobId, jobId), eq(artifacts.attempt, attempt))).orderBy(asc(artifacts.name));
}

export function getArtifact(db: Db, jobId: string, attempt: number, name: string) {
  return db.query.artifacts.findFirst({ where: and(eq(artifacts.jobId, jobId), eq(artifacts.attempt, attempt), eq(artifacts.name, name)) });
}

export const artifactView = (a: ArtifactRow) => ({ name: a.name, size: a.size, sha256: a.sha256, attempt: a.attempt, created_at: new Date(a.createdAt).toISOString() });
