import { createRoute, z } from "@hono/zod-openapi";
import type { Principal } from "../auth/principal.ts";
import type { Role } from "../auth/roles.ts";
import { audit } from "../audit.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import { createDb, type Db } from "../db/client.ts";
import { arrayProgress, getArray, type ArrayRow } from "../db/workflows.ts";
import { access, errors, json, router } from "../openapi.ts";
import { ArraySummary } from "../schemas.ts";
import { arrayStatus } from "../workflows/array-status.ts";
import { mustOwn } from "./guards.ts";

const tags = ["jobs"];
const user = access("admin", "user");
const ArrayParams = z.object({ id: z.string().max(64).openapi({ example: "a_01jd2x7k8m9n0p1q2r3s4t5v6w" }) });

/** An array the caller holds `need` in; another project's reads as one that does not exist. */
export async function mustGetArray(db: Db, principal: Principal, id: string, need: Role = "viewer"): Promise<ArrayRow> {
  return mustOwn(principal, await getArray(db, id), need, `array ${id}`);
}

/** The public shape of an array: its tasks counted by status, and which failed. */
export async function arraySummary(db: Db, a: ArrayRow) {
  const p = await arrayProgress(db, a.id);
  const n = (s: keyof typeof p.byStatus) => p.byStatus[s] ?? 0;
  return {
    id: a.id,
    project: a.project,
    pool: a.pool,
    name: a.name,
    count: a.count,
    submitted_by: a.submittedBy,
    created_at: new Date(a.createdAt).toISOString(),
    status: arrayStatus(p.byStatus),
    counts: { queued: n("queued"), assigned: n("assigned"), running: n("running"), completed: n("completed"), failed: n("failed"), canceled: n("canceled") },
    failed_indices: p.failedIndices,
    first_job: p.first ?? "",
  };
}

/** `/v1/arrays`: an array's progress, and canceling all of it. Its tasks are listed by `GET /v1/jobs?array=`. */
export const arrayRoutes = router()
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}",
      summary: "An array's tasks, counted by state",
      request: { params: ArrayParams },
      responses: { 200: json(ArraySummary, "The array, with its tasks counted by status and its failed indices."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      return c.json(await arraySummary(db, await mustGetArray(db, c.get("principal"), c.req.valid("param").id)), 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/{id}/cancel",
      summary: "Cancel every unfinished task of an array",
      description: `${user.description} Queued tasks are canceled at once; running ones get SIGTERM, then SIGKILL, as a canceled job does. Finished tasks keep their outcome.`,
      request: { params: ArrayParams },
      responses: { 200: json(ArraySummary, "The array after canceling."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const a = await mustGetArray(db, c.get("principal"), c.req.valid("param").id, "member");
      const canceled = await coordinatorFor(c.env, a.pool).cancelArray(a.pool, { id: a.id, project: a.project });
      await audit(c, "array.cancel", { project: a.project, target: a.id, detail: { canceled } });
      return c.json(await arraySummary(db, a), 200);
    },
  );
