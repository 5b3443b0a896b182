import { eq } from "drizzle-orm";
import { PoolSandbox } from "../../../protocol/index.ts";
import type { Db } from "./client.ts";
import { poolSandbox } from "./schema.ts";

/** The policy a pool has when nobody set one. */
export const DEFAULT_POOL_SANDBOX: PoolSandbox = PoolSandbox.parse({});

export interface PoolSandboxView {
  pool: string;
  sandbox: PoolSandbox;
  /** Null while the pool has the defaults. */
  updated_at: string | null;
  updated_by: string | null;
}

/** A pool's sandbox policy; a stored one is read through the schema so fields added later get their defaults. */
export async function getPoolSandbox(db: Db, pool: string): Promise<PoolSandboxView> {
  const [row] = await db.select().from(poolSandbox).where(eq(poolSandbox.pool, pool));
  if (!row) return { pool, sandbox: DEFAULT_POOL_SANDBOX, updated_at: null, updated_by: null };
  return { pool, sandbox: PoolSandbox.parse(row.policy), updated_at: new Date(row.updatedAt).toISOString(), updated_by: row.updatedBy };
}

export async function putPoolSandbox(db: Db, pool: string, policy: PoolSandbox, by: string, now: number): Promise<PoolSandboxView> {
  await db
    .insert(poolSandbox)
    .values({ pool, policy, updatedAt: now, updatedBy: by })
    .onConflictDoUpdate({ target: poolSandbox.pool, set: { policy, updatedAt: now, updatedBy: by } });
  return { pool, sandbox: policy, updated_at: new Date(now).toISOString(), updated_by: by };
}
