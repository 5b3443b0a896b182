import { desc, eq } from "drizzle-orm";
import type { UpgradeState } from "../../../protocol/index.ts";
import { inJson, type Db } from "./client.ts";
import { agentBundles, poolUpgrades, workers, workerUpgrades } from "./schema.ts";

export type AgentBundleRow = typeof agentBundles.$inferSelect;
export type WorkerUpgradeRow = typeof workerUpgrades.$inferSelect;

export function insertBundle(db: Db, row: typeof agentBundles.$inferInsert) {
  return db.insert(agentBundles).values(row);
}

export async function getBundle(db: Db, version: string): Promise<AgentBundleRow | undefined> {
  const [row] = await db.select().from(agentBundles).where(eq(agentBundles.version, version));
  return row;
}

/** An unfinished upload of a version is replaced by a new one: publishing again after a failed upload needs no cleanup. */
export function deleteBundle(db: Db, version: string) {
  return db.delete(agentBundles).where(eq(agentBundles.version, version));
}

export function markBundleReady(db: Db, version: string, now: number) {
  return db.update(agentBundles).set({ status: "ready", readyAt: now }).where(eq(agentBundles.version, version));
}

export function listBundles(db: Db) {
  return db.select().from(agentBundles).orderBy(desc(agentBundles.createdAt));
}

export function bundleView(b: AgentBundleRow) {
  return {
    version: b.version,
    sha256: b.sha256,
    size: b.size,
    status: b.status,
    created_by: b.createdBy,
    created_at: new Date(b.createdAt).toISOString(),
    ready_at: b.readyAt === null ? null : new Date(b.readyAt).toISOString(),
  };
}

export async function getPoolUpgrade(db: Db, pool: string) {
  const [row] = await db.select().from(poolUpgrades).where(eq(poolUpgrades.pool, pool));
  return row;
}

/** Sets the pool's target and makes every earlier outcome of its workers pending again, so an operator's retry reaches those that failed or rolled back. */
export async function putPoolUpgrade(db: Db, pool: string, version: string, by: string, now: number) {
  await db.batch([
    db
      .insert(poolUpgrades)
      .values({ pool, version, requestedBy: by, requestedAt: now })
      .onConflictDoUpdate({ target: poolUpgrades.pool, set: { version, requestedBy: by, requestedAt: now } }),
    db.delete(workerUpgrades).where(eq(workerUpgrades.pool, pool)),
  ]);
}

export function workerUpgradesOf(db: Db, ids: string[]): Promise<WorkerUpgradeRow[]> {
  return ids.length ? db.select().from(workerUpgrades).where(inJson(workerUpgrades.workerId, ids)) : Promise.resolve([]);
}

export function putWorkerUpgrades(db: Db, rows: WorkerUpgradeRow[]) {
  return Promise.all(
    rows.map((row) =>
      db
        .insert(workerUpgrades)
        .values(row)
        .onConflictDoUpdate({ target: workerUpgrades.workerId, set: { fromVersion: row.fromVersion, toVersion: row.toVersion, state: row.state, reason: row.reason, updatedAt: row.updatedAt } }),
    ),
  );
}

export function setWorkerUpgradeState(db: Db, workerId: string, state: UpgradeState, reason: string | null, now: number) {
  return db.update(workerUpgrades).set({ state, reason, updatedAt: now }).where(eq(workerUpgrades.workerId, workerId));
}

/** A pool's workers with their latest upgrade, if any: what `GET /v1/pools/:pool/upgrade` shows. */
export function poolWorkerUpgrades(db: Db, pool: string) {
  return db
    .select({ id: workers.id, name: workers.name, online: workers.online, version: workers.agentVersion, upgrade: workerUpgrades })
    .from(workers)
    .leftJoin(workerUpgrades, eq(workerUpgrades.workerId, workers.id))
    .where(eq(workers.pool, pool))
    .orderBy(workers.name);
}
