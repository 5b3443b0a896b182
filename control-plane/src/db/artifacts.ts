import { and, asc, eq } from "drizzle-orm";
import type { JobInput } from "../../../protocol/index.ts";
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

/** An artifact input as found: the file of its job's latest attempt, with that job's project. */
export interface ArtifactSource {
  job: string;
  name: string;
  project: string;
  key: string;
  size: number;
  sha256: string;
}

/** The artifacts that artifact inputs name, each from its job's latest attempt, in one read; those missing are left out. */
export async function artifactSources(db: Db, inputs: readonly JobInput[]): Promise<Map<string, ArtifactSource>> {
  const refs = inputs.flatMap((i) => ("artifact" in i ? [[i.artifact.job, i.artifact.name]] : []));
  if (refs.length === 0) return new Map();
  const rows = await db.$client
    .prepare(
      "SELECT j.id, a.name, j.project, a.key, a.size, a.sha256 FROM (SELECT value ->> 0 AS job, value ->> 1 AS name FROM json_each(?1)) AS v " +
        "JOIN jobs j ON j.id = v.job JOIN artifacts a ON a.job_id = j.id AND a.attempt = j.attempt AND a.name = v.name",
    )
    .bind(JSON.stringify(refs))
    .raw<[string, string, string, string, number, string]>();
  return new Map(rows.map(([job, name, project, key, size, sha256]) => [artifactKey(job, name), { job, name, project, key, size, sha256 }]));
}

export const artifactKey = (job: string, name: string) => `${job}/${name}`;
