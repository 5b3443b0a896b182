import { HTTPException } from "hono/http-exception";
import { AppError } from "./errors.ts";
import { BEARER, openApiDocument, router } from "./openapi.ts";
import { agentRoutes } from "./routes/agent.ts";
import { auditRoutes } from "./routes/audit.ts";
import { backupRoutes } from "./routes/backups.ts";
import { dashboardRoutes } from "./dashboard/routes.tsx";
import { datasetRoutes } from "./routes/datasets.ts";
import { faultRoutes } from "./routes/faults.ts";
import { jobAttemptRoutes } from "./routes/job-attempts.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { jobWorkflowRoutes } from "./routes/job-workflows.ts";
import { portRoutes } from "./routes/ports.ts";
import { arrayRoutes } from "./routes/arrays.ts";
import { broadcastRoutes } from "./routes/broadcasts.ts";
import { opsRoutes } from "./routes/ops.ts";
import { secretRoutes } from "./routes/secrets.ts";
import { sessionRoutes } from "./routes/sessions.ts";
import { poolRoutes } from "./routes/pools.ts";
import { autoscaleRoutes } from "./routes/autoscale.ts";
import { agentBundleRoutes } from "./routes/agent-bundles.ts";
import { projectRoutes } from "./routes/projects.ts";
import { tokenRoutes } from "./routes/tokens.ts";
import { userRoutes } from "./routes/users.ts";
import { eventRoutes } from "./routes/events.ts";
import { webhookRoutes } from "./routes/webhooks.ts";
import { scheduleRoutes } from "./routes/schedules.ts";
import { workerRoutes } from "./routes/workers.ts";

const base = router();
base.openAPIRegistry.registerComponent("securitySchemes", BEARER, {
  type: "http",
  scheme: "bearer",
  description: "The admin token (`GRIDX_ADMIN_TOKEN`), an API token (`POST /v1/api-tokens`) or, on agent routes, an agent token.",
});

export const app = base
  .route("/", opsRoutes)
  .route("/v1/jobs", jobRoutes)
  .route("/v1/workers", workerRoutes)
  .route("/v1/datasets", datasetRoutes)
  .route("/v1/agent", agentRoutes)
  .route("/v1/projects", projectRoutes)
  .route("/v1/projects", secretRoutes)
  .route("/v1/jobs", jobAttemptRoutes)
  .route("/v1/jobs", jobWorkflowRoutes)
  .route("/v1/jobs", portRoutes)
  .route("/v1/arrays", arrayRoutes)
  .route("/v1/pools", poolRoutes)
  .route("/v1", broadcastRoutes)
  .route("/v1/pools", autoscaleRoutes)
  .route("/v1/agent-bundles", agentBundleRoutes)
  .route("/v1", tokenRoutes)
  .route("/v1", userRoutes)
  .route("/v1/audit", auditRoutes)
  .route("/v1/backups", backupRoutes)
  .route("/v1/sessions", sessionRoutes)
  .route("/v1/webhooks", webhookRoutes)
  .route("/v1/schedules", scheduleRoutes)
  .route("/v1/events", eventRoutes)
  // Test-only, and a 404 unless GRIDX_FAULTS is "on"; never in the OpenAPI document.
  .route("/v1/test", faultRoutes)
  // The document is built from the routes' own zod schemas, so it cannot drift from what they accept.
  .get("/openapi.json", (c) => c.json(openApiDocument(base, new URL(c.req.url).origin)))
  .route("/", dashboardRoutes)
  .notFound((c) => c.json(new AppError("not_found", `no route ${c.req.method} ${new URL(c.req.url).pathname}`).toJSON(), 404))
  .onError((err, c) => {
    if (err instanceof AppError) return c.json(err.toJSON(), err.status);
    // The OpenAPI router's own media-type check: the same answer as the body guard's.
    if (err instanceof HTTPException && err.status === 415) {
      return c.json(new AppError("validation_failed", "send the body as JSON with `Content-Type: application/json`", "Content-Type").toJSON(), 400);
    }
    if (err instanceof HTTPException) {
      const code = err.status === 401 ? "unauthorized" : err.status === 403 ? "forbidden" : err.status === 404 ? "not_found" : "validation_failed";
      return c.json(new AppError(code, err.message || "bad request").toJSON(), err.status);
    }
    console.error(`${c.req.method} ${c.req.path} failed`, err);
    return c.json(new AppError("internal", "internal error; it has been logged").toJSON(), 500);
  });

/** The API's type, for typed clients: `hc<AppType>(url)` from `hono/client`. */
export type AppType = typeof app;
