import { and, eq, lt, sql } from "drizzle-orm";
import type { WarmCache, WorkerCaps } from "../../../protocol/index.ts";
import type { Db } from "./client.ts";
import { workers } from "./schema.ts";
import { newId } from "../ids.ts";
import { agentVersionVerdict } from "../fleet/agent-versions.ts";

export type WorkerRow = typeof workers.$inferSelect;

/** What a hello records of its worker. */
export type Hello = { pool: string; name: string; tokenId: string; caps: WorkerCaps; slots: number; agentVersion: string; warm: WarmCache; draining: boolean; now: number };

/**
 * Records hellos, several in one round trip (a reconnect storm): the same pool and name is the
 * same worker, whatever process it is now, but only for the agent token that created it. A
 * worker is bound to its credential: another token gets undefined and never takes the name,
 * its sockets or its attempts over, unless the worker's own token was revoked or deleted (a
 * machine given a new token keeps its name). One row, or undefined, per hello.
 */
export async function upsertWorkers(db: Db, hellos: Hello[]): Promise<(WorkerRow | undefined)[]> {
  if (hellos.length === 0) return [];
  const [first, ...rest] = hellos.map((w) => upsertStatement(db, w));
  const results = await db.batch([first!, ...rest]);
  return results.map((rows) => rows[0]);
}

function upsertStatement(db: Db, w: Hello) {
  const live = { online: true, caps: w.caps, slots: w.slots, agentVersion: w.agentVersion, warm: w.warm, tokenId: w.tokenId, connectedAt: w.now, lastSeen: w.now };
  return db
    .insert(workers)
    .values({ id: newId("w", w.now), pool: w.pool, name: w.name, createdAt: w.now, ...live, drain: w.draining ? "agent" : null })
    .onConflictDoUpdate({
      target: [workers.pool, workers.name],
      set: {
        ...live,
        // An agent's own drain ends with the process that asked for it, unless it says it still
        // drains (an upgrade waiting for its jobs); an operator's stays.
        drain: w.draining ? sql`COALESCE(${workers.drain}, 'agent')` : sql`CASE WHEN ${workers.drain} = 'agent' THEN NULL ELSE ${workers.drain} END`,
      },
      setWhere: sql`${workers.tokenId} = excluded.token_id OR NOT EXISTS (SELECT 1 FROM tokens t WHERE t.id = ${workers.tokenId} AND t.revoked_at IS NULL)`,
    })
    .returning();
}

export function setWarm(db: Db, id: string, warm: WarmCache) {
  return db.update(workers).set({ warm }).where(eq(workers.id, id));
}

/** Ids travel as one JSON parameter: D1 binds at most 100 parameters to a statement, and a pool has more workers. */
const idsIn = (ids: string[]) => sql`(SELECT value FROM json_each(${JSON.stringify(ids)}))`;

export function workersByIds(db: Db, ids: string[]): Promise<WorkerRow[]> {
  return ids.length ? db.select().from(workers).where(sql`${workers.id} IN ${idsIn(ids)}`) : Promise.resolve([]);
}

export function getWorker(db: Db, id: string) {
  return db.query.workers.findFirst({ where: eq(workers.id, id) });
}

export function listWorkers(db: Db, pool?: string) {
  return db
    .select()
    .from(workers)
    .where(pool ? eq(workers.pool, pool) : undefined)
    .orderBy(workers.pool, workers.name);
}

export async function touchWorkers(db: Db, seen: { id: string; at: number }[]) {
  if (seen.length === 0) return;
  const [first, ...rest] = seen.map((s) => db.update(workers).set({ lastSeen: s.at }).where(eq(workers.id, s.id)));
  await db.batch([first!, ...rest]);
}

/** The worker's last socket went; `lastSeen` is when it was last heard, which the requeue clock counts from. */
export function setOffline(db: Db, id: string, lastSeen: number) {
  return db.update(workers).set({ online: false, lastSeen }).where(eq(workers.id, id));
}

/** Workers the database still calls online although no socket of theirs is held here. */
export function markOfflineExcept(db: Db, pool: string, connected: string[]) {
  return db
    .update(workers)
    .set({ online: false })
    .where(and(eq(workers.pool, pool), eq(workers.online, true), connected.length ? sql`${workers.id} NOT IN ${idsIn(connected)}` : undefined));
}

export function setDrain(db: Db, id: string, drain: "operator" | "agent" | null) {
  return db.update(workers).set({ drain }).where(eq(workers.id, id));
}

export function silentSince(db: Db, pool: string, cutoff: number) {
  return db
    .select({ id: workers.id })
    .from(workers)
    .where(and(eq(workers.pool, pool), lt(workers.lastSeen, cutoff)));
}

/** A worker's capabilities as stored; one that said hello before agents reported runtimes runs runc only, without egress. */
export function capsOf(row: Pick<WorkerRow, "caps">): WorkerCaps {
  const caps = row.caps as Partial<WorkerCaps> & Omit<WorkerCaps, "runtimes" | "egress" | "ports">;
  return { ...caps, runtimes: caps.runtimes ?? ["runc"], egress: caps.egress ?? false, ports: caps.ports ?? false };
}

/** What the API shows of a worker; `recommended` is AGENT_RECOMMENDED_VERSION. */
export function workerView(row: WorkerRow, running: number, recommended: string) {
  const caps = capsOf(row);
  const status: "online" | "offline" | "draining" = !row.online ? "offline" : row.drain ? "draining" : "online";
  return {
    id: row.id,
    name: row.name,
    pool: row.pool,
    status,
    caps: {
      cpu_cores: caps.cpu_cores,
      memory_mb: caps.memory_mb,
      gpus: caps.gpus.length,
      gpu_devices: caps.gpus,
      nvidia_runtime: caps.nvidia_runtime,
      labels: caps.labels,
      os: caps.os,
      arch: caps.arch,
      wsl: caps.wsl,
      runtimes: caps.runtimes,
      egress: caps.egress,
      ports: caps.ports,
    },
    agent_version: row.agentVersion,
    outdated: agentVersionVerdict(row.agentVersion, { minimum: "", recommended }).kind === "outdated",
    slots: row.slots,
    running,
    /** Keys (protocol `envKey`, `repoKey`) of the environments and repositories it has cached. */
    warm: row.warm,
    connected_at: new Date(row.connectedAt).toISOString(),
    last_seen: new Date(row.lastSeen).toISOString(),
  };
}

/** Forgets an offline worker; false when it is online (or gone already). Its attempts stay in their jobs' history. */
export async function deleteOfflineWorker(db: Db, id: string): Promise<boolean> {
  const gone = await db.delete(workers).where(and(eq(workers.id, id), eq(workers.online, false))).returning({ id: workers.id });
  return gone.length > 0;
}
