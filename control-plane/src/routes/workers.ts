import { Hono } from "hono";
import { inArray, sql } from "drizzle-orm";
import { z } from "zod";
import { HOLDING } from "../db/attempts.ts";
import { createDb } from "../db/client.ts";
import { attempts } from "../db/schema.ts";
import { getWorker, listWorkers, workerView } from "../db/workers.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { requireAuth } from "../middleware/auth.ts";
import { jsonBody, parseWith } from "../middleware/validate.ts";
import { ProbeRequest } from "../../../protocol/index.ts";
import { getProbe, insertProbe, listProbes, probeView } from "../db/probes.ts";
import { newId } from "../ids.ts";

const ListQuery = z.object({ pool: z.string().max(63).optional() });

async function runningCounts(db: ReturnType<typeof createDb>, ids: string[]) {
  if (ids.length === 0) return new Map<string, number>();
  const rows = await db
    .select({ workerId: attempts.workerId, n: sql<number>`count(*)` })
    .from(attempts)
    .where(inArray(attempts.status, HOLDING))
    .groupBy(attempts.workerId);
  return new Map(rows.map((r) => [r.workerId, r.n]));
}

function drainRoute(drain: boolean) {
  return async (c: import("hono").Context<AppEnv>) => {
    const db = createDb(c.env.DB);
    const id = c.req.param("id")!;
    const worker = await mustGetWorker(db, id);
    await coordinatorFor(c.env, worker.pool).setWorkerDrain(worker.pool, id, drain);
    const after = (await getWorker(db, id))!;
    return c.json(workerView(after, (await runningCounts(db, [id])).get(id) ?? 0));
  };
}

async function mustGetWorker(db: ReturnType<typeof createDb>, id: string) {
  const worker = await getWorker(db, id);
  if (!worker) throw new AppError("not_found", `no worker ${id}`);
  return worker;
}

/** Probe audit records shown per page. */
const PROBE_PAGE = 100;

export const workerRoutes = new Hono<AppEnv>()
  .get("/", requireAuth("admin", "user"), async (c) => {
    const q = parseWith(ListQuery, c.req.query());
    const db = createDb(c.env.DB);
    const rows = await listWorkers(db, q.pool);
    const running = await runningCounts(db, rows.map((r) => r.id));
    return c.json({ workers: rows.map((r) => workerView(r, running.get(r.id) ?? 0)) });
  })
  .post("/:id/drain", requireAuth("admin"), drainRoute(true))
  .post("/:id/undrain", requireAuth("admin"), drainRoute(false))
  .post("/:id/probes", requireAuth("admin"), async (c) => {
    const body = await jsonBody(c, ProbeRequest);
    const db = createDb(c.env.DB);
    const worker = await mustGetWorker(db, c.req.param("id"));
    if (!worker.online) throw new AppError("conflict", `worker ${worker.id} is offline; a probe needs a connected agent`);
    const id = newId("pr");
    await insertProbe(db, { id, workerId: worker.id, pool: worker.pool, command: body.command, requestedBy: c.get("principal").tokenId, now: Date.now() });
    await coordinatorFor(c.env, worker.pool).runProbe(worker.pool, { id, workerId: worker.id, command: body.command, timeoutS: body.timeout_s });
    return c.json(probeView((await getProbe(db, id))!), 201);
  })
  .get("/:id/probes", requireAuth("admin"), async (c) => {
    const db = createDb(c.env.DB);
    const worker = await mustGetWorker(db, c.req.param("id"));
    return c.json({ probes: (await listProbes(db, worker.id, PROBE_PAGE)).map(probeView) });
  });
