import { createRoute, z } from "@hono/zod-openapi";
import { createDb } from "../db/client.ts";
import { attemptView, jobAttempts } from "../db/reports.ts";
import { access, errors, json, router } from "../openapi.ts";
import { AttemptList } from "../schemas.ts";
import { mustGetJob } from "./guards.ts";

const user = access("admin", "user");
const JobParams = z.object({ id: z.string().min(1).max(64).openapi({ param: { name: "id", in: "path" } }) });

/** `GET /v1/jobs/:id/attempts`: every try of a job with its timestamps, for timelines. */
export const jobAttemptRoutes = router().openapi(
  createRoute({
    ...user,
    tags: ["jobs"],
    method: "get",
    path: "/{id}/attempts",
    summary: "Every attempt of a job, with its worker and timestamps",
    request: { params: JobParams },
    responses: { 200: json(AttemptList, "The job's attempts, first to latest."), ...errors(400, 401, 403, 404) },
  }),
  async (c) => {
    const db = createDb(c.env.DB);
    const { id } = c.req.valid("param");
    await mustGetJob(db, c.get("principal"), id);
    return c.json({ attempts: (await jobAttempts(db, id)).map(attemptView) }, 200);
  },
);
