import { createRoute, z } from "@hono/zod-openapi";
import { JobSpec, WORKFLOW_LIMITS } from "../../../protocol/index.ts";
import { audit } from "../audit.ts";
import { createDb } from "../db/client.ts";
import { jobView } from "../db/jobs.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { BatchRequest, BatchResult, JobDetail } from "../schemas.ts";
import { submitBatch } from "../workflows/batch.ts";
import { pendingReasons } from "../workflows/pending.ts";
import { submitJob } from "../workflows/submit.ts";
import { mustGetJob } from "./guards.ts";
import { fullJobView } from "./jobs.ts";

const tags = ["jobs"];
const user = access("admin", "user");
const JobParams = z.object({ id: z.string().max(64).openapi({ example: "j_01jd2x7k8m9n0p1q2r3s4t5v6w" }) });
const KeyHeader = z.object({
  "Idempotency-Key": z
    .string()
    .min(1)
    .max(240)
    .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces")
    .optional()
    .openapi({ description: "the same key gives the same jobs; for a batch, item i gets the key `KEY#i`" }),
});

/** `POST /v1/jobs/batch` and `POST /v1/jobs/:id/rerun`: jobs made from other requests or jobs. */
export const jobWorkflowRoutes = router()
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/batch",
      summary: "Submit many jobs in one request",
      description: `${user.description} Up to ${WORKFLOW_LIMITS.batch_jobs.max} JobRequests, each submitted on its own as POST /v1/jobs would (atomic per item: one refused leaves the others), with a result per item. An item may name another item as \`$N\` in depends_on[].job (an array item: all its tasks) or inputs[].artifact.job, so a whole pipeline goes in one request; items are submitted after those they name. A \`$N\` past the batch, or a cycle, refuses the whole batch with the field.`,
      request: { body: body(BatchRequest), headers: KeyHeader },
      responses: { 200: json(BatchResult, "One result per item, in the order given."), ...errors(400, 401, 403, 413) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const results = await submitBatch({ db, env: c.env, waitUntil: (p) => c.executionCtx.waitUntil(p) }, c.get("principal"), c.req.valid("json").jobs, c.req.valid("header")["Idempotency-Key"] ?? null);
      const jobs = results.flatMap((r) => (r.job ? [r.job] : []));
      const pending = await pendingReasons(db, jobs);
      return c.json(
        {
          results: results.map((r) => ({ index: r.index, status: r.status, ...(r.job ? { job: jobView(r.job, pending.get(r.job.id) ?? null) } : {}), ...(r.error ? { error: r.error } : {}) })),
          submitted: results.filter((r) => r.job).length,
          refused: results.filter((r) => !r.job).length,
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/{id}/rerun",
      summary: "Submit a copy of a job",
      description: `${user.description} A new job with the same spec (an array task keeps its index; dependencies are settled against its parents as they are now), its \`rerun_of\` naming the original.`,
      request: { params: JobParams, headers: KeyHeader },
      responses: { 201: json(JobDetail, "The copy, queued."), 200: json(JobDetail, "The copy an earlier request with the same Idempotency-Key made."), ...errors(400, 401, 403, 404, 409, 413, 429) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const principal = c.get("principal");
      const original = await mustGetJob(db, principal, c.req.valid("param").id, "member");
      const key = c.req.valid("header")["Idempotency-Key"] ?? null;
      // Parsed, so a spec stored before a field existed gets its default.
      const { job, created } = await submitJob({ db, env: c.env, waitUntil: (p) => c.executionCtx.waitUntil(p) }, principal, JobSpec.parse(original.spec), {
        rerunOf: original.id,
        idempotencyKey: key,
        requestHash: key ? `rerun:${original.id}` : null,
      });
      if (created) await audit(c, "job.rerun", { project: job.project, target: job.id, detail: { rerun_of: original.id } });
      return c.json(await fullJobView(db, job), created ? 201 : 200);
    },
  );
