import { createRoute, z } from "@hono/zod-openapi";
import { PoolName } from "../../../protocol/index.ts";
import { audit } from "../audit.ts";
import { broadcastParts, getBroadcast } from "../db/broadcasts.ts";
import { createDb } from "../db/client.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { Broadcast, BroadcastCreated, BroadcastRequest } from "../schemas.ts";
import { broadcastProgress, submitBroadcast } from "../workflows/broadcast.ts";
import { mustOwn } from "./guards.ts";

const tags = ["pools"];
const user = access("admin", "user");
const PoolParams = z.object({ pool: PoolName.clone().openapi({ param: { name: "pool", in: "path" }, example: "default" }) });
const BroadcastParams = z.object({ id: z.string().max(64).openapi({ param: { name: "id", in: "path" }, example: "b_01jd2x7k8m9n0p1q2r3s4t5v6w" }) });

/** Run on all workers: one job per worker of a pool, each pinned to its worker, and every worker's result. */
export const broadcastRoutes = router()
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/pools/{pool}/broadcast",
      summary: "Run a job once on every online worker of a pool, or on the listed ones",
      description: `${user.description} A member of the job's project. Each job is a normal job pinned to its worker (\`worker\`); at most BROADCAST_MAX_WORKERS of them.`,
      request: { params: PoolParams, body: body(BroadcastRequest) },
      responses: {
        201: json(BroadcastCreated, "The broadcast, and the job queued for each worker."),
        ...errors(400, 401, 403, 404, 409, 413, 429),
      },
    }),
    async (c) => {
      const { pool } = c.req.valid("param");
      const { job, workers } = c.req.valid("json");
      const db = createDb(c.env.DB);
      const { id, project, jobs } = await submitBroadcast({ db, env: c.env, waitUntil: (p) => c.executionCtx.waitUntil(p) }, c.get("principal"), pool, job, workers);
      await audit(c, "pool.broadcast", { project, target: id, detail: { pool, workers: jobs.length } });
      return c.json({ id, jobs }, 201);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/broadcasts/{id}",
      summary: "A broadcast: every worker's job and its outcome",
      description: `${user.description} Readers of the broadcast's project; to anyone else it does not exist.`,
      request: { params: BroadcastParams },
      responses: { 200: json(Broadcast, "Per worker: its job, status, exit code and end; the jobs counted by status; done once all have ended."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const { id } = c.req.valid("param");
      const b = mustOwn(c.get("principal"), await getBroadcast(db, id), "viewer", `broadcast ${id}`);
      return c.json(
        { id: b.id, project: b.project, pool: b.pool, name: b.name, submitted_by: b.submittedBy, created_at: new Date(b.createdAt).toISOString(), ...broadcastProgress(await broadcastParts(db, b.id)) },
        200,
      );
    },
  );
