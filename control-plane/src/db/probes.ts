import { and, desc, eq } from "drizzle-orm";
import type { Db } from "./client.ts";
import { probes } from "./schema.ts";

export type ProbeRow = typeof probes.$inferSelect;
export type ProbeOutcome = Pick<ProbeRow, "status" | "exitCode" | "output" | "truncated" | "error">;

export function insertProbe(db: Db, row: { id: string; workerId: string; pool: string; command: string; requestedBy: string; now: number }) {
  return db.insert(probes).values({ ...row, status: "pending", createdAt: row.now });
}

/**
 * Records how a probe ended; only a pending probe changes, so the first answer stands. With
 * `workerId`, only that worker's probe: an agent answers only the probes sent to it.
 * Resolves with whether a probe changed.
 */
export async function finishProbe(db: Db, id: string, outcome: ProbeOutcome, now: number, workerId?: string): Promise<boolean> {
  const changed = await db
    .update(probes)
    .set({ ...outcome, finishedAt: now })
    .where(and(eq(probes.id, id), eq(probes.status, "pending"), workerId === undefined ? undefined : eq(probes.workerId, workerId)))
    .returning({ id: probes.id });
  return changed.length > 0;
}

export function getProbe(db: Db, id: string) {
  return db.query.probes.findFirst({ where: eq(probes.id, id) });
}

export function listProbes(db: Db, workerId: string, limit: number) {
  return db.select().from(probes).where(eq(probes.workerId, workerId)).orderBy(desc(probes.createdAt)).limit(limit);
}

export function probeView(p: ProbeRow) {
  return {
    id: p.id,
    worker_id: p.workerId,
    command: p.command,
    requested_by: p.requestedBy,
    status: p.status,
    exit_code: p.exitCode,
    output: p.output,
    truncated: p.truncated,
    error: p.error,
    created_at: new Date(p.createdAt).toISOString(),
    finished_at: p.finishedAt === null ? null : new Date(p.finishedAt).toISOString(),
  };
}
