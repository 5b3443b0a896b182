import { and, desc, eq, inArray, lt, type SQL } from "drizzle-orm";
import { inJson, type Db } from "./client.ts";
import { datasets } from "./schema.ts";

export type DatasetRow = typeof datasets.$inferSelect;

export function insertDataset(db: Db, row: typeof datasets.$inferInsert) {
  return db.insert(datasets).values(row);
}

export function getDataset(db: Db, id: string) {
  return db.query.datasets.findFirst({ where: eq(datasets.id, id) });
}

export function datasetsByIds(db: Db, ids: string[]) {
  return ids.length ? db.select().from(datasets).where(inArray(datasets.id, ids)) : Promise.resolve([]);
}

export function markReady(db: Db, id: string, now: number) {
  return db.update(datasets).set({ status: "ready", uploadId: null, completedAt: now }).where(eq(datasets.id, id));
}

export function deleteDataset(db: Db, id: string) {
  return db.delete(datasets).where(eq(datasets.id, id));
}

/** Newest first; `projects` null means every project (the admin). */
export async function listDatasets(db: Db, q: { projects: string[] | null; project?: string; limit: number; cursor?: string }) {
  const { limit, cursor } = q;
  const where: SQL[] = [];
  if (q.projects) where.push(inJson(datasets.project, q.projects));
  if (q.project) where.push(eq(datasets.project, q.project));
  if (cursor) where.push(lt(datasets.id, cursor));
  const rows = await db
    .select()
    .from(datasets)
    .where(and(...where))
    .orderBy(desc(datasets.id))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  return { datasets: page, nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null };
}

export function abandonedUploads(db: Db, createdBefore: number) {
  return db.select().from(datasets).where(and(eq(datasets.status, "uploading"), lt(datasets.createdAt, createdBefore)));
}

export function datasetView(d: DatasetRow) {
  return {
    id: d.id,
    project: d.project,
    name: d.name,
    size: d.size,
    sha256: d.sha256,
    status: d.status,
    multipart: d.partSize !== null,
    part_size: d.partSize,
    created_at: new Date(d.createdAt).toISOString(),
    completed_at: d.completedAt === null ? null : new Date(d.completedAt).toISOString(),
  };
}
