import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "./env.ts";
import { AppError } from "./errors.ts";
import { agentRoutes } from "./routes/agent.ts";
import { dashboardRoutes } from "./dashboard/routes.tsx";
import { datasetRoutes } from "./routes/datasets.ts";
import { jobAttemptRoutes } from "./routes/job-attempts.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { opsRoutes } from "./routes/ops.ts";
import { secretRoutes } from "./routes/secrets.ts";
import { poolRoutes } from "./routes/pools.ts";
import { tokenRoutes } from "./routes/tokens.ts";
import { workerRoutes } from "./routes/workers.ts";

export const app = new Hono<AppEnv>()
  .route("/", opsRoutes)
  .route("/v1/jobs", jobRoutes)
  .route("/v1/workers", workerRoutes)
  .route("/v1/datasets", datasetRoutes)
  .route("/v1/agent", agentRoutes)
  .route("/v1/projects", secretRoutes)
  .route("/v1/jobs", jobAttemptRoutes)
  .route("/v1/pools", poolRoutes)
  .route("/v1", tokenRoutes)
  .route("/", dashboardRoutes)
  .notFound((c) => c.json(new AppError("not_found", `no route ${c.req.method} ${new URL(c.req.url).pathname}`).toJSON(), 404))
  .onError((err, c) => {
    if (err instanceof AppError) return c.json(err.toJSON(), err.status);
    if (err instanceof HTTPException) {
      const code = err.status === 401 ? "unauthorized" : err.status === 403 ? "forbidden" : err.status === 404 ? "not_found" : "validation_failed";
      return c.json(new AppError(code, err.message || "bad request").toJSON(), err.status);
    }
    console.error(`${c.req.method} ${c.req.path} failed`, err);
    return c.json(new AppError("internal", "internal error; it has been logged").toJSON(), 500);
  });
