import type { CoordinatorToAgent, UpgradeReport } from "../../../protocol/index.ts";
import type { Db } from "../db/client.ts";
import { getBundle, getPoolUpgrade, putWorkerUpgrades, setWorkerUpgradeState, workerUpgradesOf, type WorkerUpgradeRow } from "../db/upgrades.ts";
import type { Bindings } from "../env.ts";
import { reportedState, upgradeAction } from "../fleet/upgrades.ts";
import type { Settings } from "../settings.ts";
import { ObjectStore } from "../storage/object-store.ts";

/* The coordinator's side of pool upgrades: orders to connected workers, and their agents' reports (decisions in fleet/upgrades.ts). */

export interface UpgradeContext {
  db: Db;
  env: Bindings;
  settings: Settings;
  pool: string;
  send(workerId: string, message: CoordinatorToAgent): boolean;
}

/**
 * Orders each of `workers` (connected, with the version its agent said hello with) that does
 * not run the pool's target to upgrade, and records where each stands. The order carries a
 * presigned GET of the bundle, so its bytes never pass through the Worker.
 */
export async function orderUpgrades(c: UpgradeContext, workers: { id: string; agentVersion: string }[], now: number): Promise<void> {
  if (workers.length === 0) return;
  const target = await getPoolUpgrade(c.db, c.pool);
  if (target) await orderUpgradesTo(c, target, workers, now);
}

/** `orderUpgrades` with the pool's target already read. */
export async function orderUpgradesTo(c: UpgradeContext, target: { version: string }, workers: { id: string; agentVersion: string }[], now: number): Promise<void> {
  if (workers.length === 0) return;
  const records = new Map((await workerUpgradesOf(c.db, workers.map((w) => w.id))).map((r) => [r.workerId, r]));
  const decided = workers.map((w) => ({ w, action: upgradeAction(w.agentVersion, target.version, records.get(w.id)) }));
  const ordered = decided.filter((d) => d.action.kind === "order");
  const rows: WorkerUpgradeRow[] = [];
  for (const { w, action } of decided) {
    if (action.kind === "done") rows.push({ workerId: w.id, pool: c.pool, fromVersion: records.get(w.id)?.fromVersion ?? w.agentVersion, toVersion: target.version, state: "done", reason: null, updatedAt: now });
    if (action.kind === "rolled_back")
      rows.push({ workerId: w.id, pool: c.pool, fromVersion: records.get(w.id)?.fromVersion ?? w.agentVersion, toVersion: target.version, state: "rolled_back", reason: `it restarted for ${target.version} and came back on ${w.agentVersion}`, updatedAt: now });
  }
  if (ordered.length) {
    const bundle = await getBundle(c.db, target.version);
    const source = bundle?.status === "ready" ? await presignedBundle(c, bundle.key) : { url: null, why: `bundle ${target.version} is not published` };
    for (const { w } of ordered) {
      const sent = bundle && source.url ? c.send(w.id, { type: "upgrade", payload: { version: bundle.version, sha256: bundle.sha256, size: bundle.size, url: source.url } }) : false;
      // Not sent (gone meanwhile): it stays pending, and its next hello orders it again.
      const reason = source.url ? (sent ? null : "the worker was not connected") : source.why;
      rows.push({ workerId: w.id, pool: c.pool, fromVersion: w.agentVersion, toVersion: target.version, state: source.url ? "pending" : "failed", reason, updatedAt: now });
    }
  }
  await putWorkerUpgrades(c.db, rows);
}

/** A presigned GET of the bundle, or why there is none (object storage not configured): never a throw, since hellos wait on this. */
async function presignedBundle(c: UpgradeContext, key: string): Promise<{ url: string; why: null } | { url: null; why: string }> {
  try {
    return { url: (await new ObjectStore(c.env.BUCKET, c.settings).presign("GET", key)).url, why: null };
  } catch (err) {
    return { url: null, why: `the bundle cannot be fetched: ${(err as Error).message}` };
  }
}

/** An agent's report on its upgrade; a stale one (another version, or after it finished) is ignored. */
export async function recordUpgradeReport(c: UpgradeContext, workerId: string, report: UpgradeReport, now: number): Promise<void> {
  const [record] = await workerUpgradesOf(c.db, [workerId]);
  const state = reportedState(record, report);
  if (state) await setWorkerUpgradeState(c.db, workerId, state, report.reason, now);
}
