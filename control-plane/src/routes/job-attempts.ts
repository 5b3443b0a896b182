import { Hono } from "hono";
import { createDb } from "../db/client.ts";
import { getJob } from "../db/jobs.ts";
import { attemptView, jobAttempts } from "../db/reports.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { requireAuth } from "../middleware/auth.ts";

/** `GET /v1/jobs/:id/attempts`: every try of a job with its timestamps, for timelines. */
export const jobAttemptRoutes = new Hono<AppEnv>().get("/:id/attempts", requireAuth("admin", "user"), async (c) => {
  const db = createDb(c.env.DB);
  const id = c.req.param("id");
  if (!(await getJob(db, id))) throw new AppError("not_found", `no job ${id}`);
  return c.json({ attempts: (await jobAttempts(db, id)).map(attemptView) });
});
