import { createRoute, z } from "@hono/zod-openapi";
import { JobStatus, JobTag, ProjectName, WORKFLOW_LIMITS, type JobSpec } from "../../../protocol/index.ts";
import { readableProjects, standingIn } from "../auth/access.ts";
import type { Principal } from "../auth/principal.ts";
import { resolveSecret, sha256Hex } from "../auth/tokens.ts";
import { bearerOf } from "../middleware/auth.ts";
import { audit } from "../audit.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import { createDb, type Db } from "../db/client.ts";
import { countingD1 } from "../db/counting.ts";
import { jobView, listJobs, type JobRow } from "../db/jobs.ts";
import { attemptView, jobAttempts } from "../db/reports.ts";
import { childrenOf, edgesOf, parentStates } from "../db/workflows.ts";
import { mustGetJob } from "./guards.ts";
import { artifactView, getArtifact, listArtifacts } from "../db/artifacts.ts";
import { pendingReasons } from "../workflows/pending.ts";
import { submitJob } from "../workflows/submit.ts";
import { totalUsage } from "../workflows/usage.ts";
import { ObjectStore } from "../storage/object-store.ts";
import { deletionRefusal, isTerminal } from "../retention/policy.ts";
import { liveNeedsOf, purgeJobs } from "../retention/purge.ts";
import { formatCursor, newestBatches, parseCursor, publicLine, tailStream, type LogCursor } from "../db/logs.ts";
import { logStreamOf } from "../logs/log-stream.ts";
import { readLogPage } from "../logs/store.ts";
import { relay } from "../streams/relay.ts";
import { AppError } from "../errors.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { ArtifactList, JobDetail, JobPage, JobRequest, LogPage } from "../schemas.ts";
import { settingsOf } from "../settings.ts";

/** How often a following log reader's token and membership are checked again. */
export const FOLLOW_REAUTH_MS = 30_000;

const ListQuery = z.object({
  project: ProjectName.optional().openapi({ description: "only this project's jobs; every project the caller reads, if absent" }),
  status: JobStatus.optional(),
  pool: z.string().max(63).optional(),
  tag: JobTag.optional().openapi({ description: "only jobs with this `key=value` tag" }),
  array: z.string().max(64).optional().openapi({ description: "only the tasks of this array" }),
  name: z.string().min(1).max(200).optional().openapi({ description: "only jobs whose name contains this" }),
  submitted_by: z.string().min(1).max(100).optional().openapi({ description: "only jobs this user (by name, or `admin`) submitted" }),
  limit: z.coerce.number().int().min(1).max(200).default(50).openapi({ type: "integer" }),
  cursor: z.string().max(64).optional().openapi({ description: "`next_cursor` of the previous page" }),
});
const LogsQuery = z.object({
  follow: z.enum(["0", "1", "true", "false"]).optional().openapi({ description: "1: stream server-sent events (`log`, then one `end`) until the job ends" }),
  after: z.string().max(40).optional().openapi({ description: "a cursor (`next_cursor`, or an event id): only lines after it; `Last-Event-ID` works too" }),
  tail: z.coerce.number().int().min(1).optional().openapi({ type: "integer", description: "bytes: the newest lines, about this much text (at most LOG_PAGE_BYTES), instead of the first page" }),
});
const TtlQuery = z.object({
  ttl_s: z.coerce.number().int().min(1).max(3600).optional().openapi({ type: "integer", description: "lifetime of the presigned URL, in seconds" }),
});
const IdempotencyKey = z.string().min(1).max(255).regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces");
const SubmitHeaders = z.object({
  "Idempotency-Key": IdempotencyKey.optional().openapi({ description: "the same key and body give the same job; the same key with another body is a 409" }),
});
const JobParams = z.object({ id: z.string().max(64).openapi({ example: "j_01jd2x7k8m9n0p1q2r3s4t5v6w" }) });
const ArtifactParams = JobParams.extend({ name: z.string().min(1).openapi({ description: "the artifact's name; it may contain '/'", example: "out/result.txt" }) });

/** A job as GET /v1/jobs/:id shows it: its output's tail, artifacts, attempts and usage, and the jobs around it. */
export async function fullJobView(db: Db, job: JobRow) {
  const spec = job.spec as JobSpec;
  const [stdout, stderr, artifacts, pending, tries, parents, children] = await Promise.all([
    job.attempt > 0 ? tailStream(db, job.id, job.attempt, "stdout") : "",
    job.attempt > 0 ? tailStream(db, job.id, job.attempt, "stderr") : "",
    job.attempt > 0 ? listArtifacts(db, job.id, job.attempt) : [],
    pendingReasons(db, [job]),
    job.attempt > 0 ? jobAttempts(db, job.id) : [],
    relatives(db, job),
    childrenOf(db, job.arrayId ? [job.id, job.arrayId] : [job.id]),
  ]);
  const attempts = tries.map(attemptView);
  return {
    ...jobView(job, pending.get(job.id) ?? null),
    spec,
    stdout,
    stderr,
    artifacts: artifacts.map(artifactView),
    attempts,
    usage: totalUsage(attempts.map((a) => a.usage)),
    parents,
    children: children.map((r) => ({ job: r.child, condition: r.condition, status: r.status })),
  };
}

/** The job's parents with their status now (an array's: null). */
async function relatives(db: Db, job: JobRow) {
  const edges = await edgesOf(db, [job.id]);
  const states = await parentStates(db, edges);
  return edges.map((e) => {
    const s = states.get(e.parent);
    return { job: e.parent, condition: e.condition, status: s?.kind === "job" ? s.status : null };
  });
}

function cursorFrom(raw: string | undefined): LogCursor | null {
  if (!raw) return null;
  const cursor = parseCursor(raw);
  if (!cursor) throw new AppError("validation_failed", "after: a cursor as returned in next_cursor, such as 1.42", "after");
  return cursor;
}

const tags = ["jobs"];
const user = access("admin", "user");

export const jobRoutes = router()
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/",
      summary: "Submit a job, or an array of tasks",
      description: `${user.description} With \`array: {count: N}\` (N ≤ ${WORKFLOW_LIMITS.array_count.max}) it submits N tasks at once, each a job that sees GRIDX_ARRAY_INDEX and GRIDX_ARRAY_COUNT, with \`{index}\` in its inputs' dataset, path or artifact name replaced by its index; the answer is task 0, whose \`array_id\` names the array. With \`depends_on\`, it waits in \`queued\` until its parents end as asked, or fails \`dependency_failed\` when one cannot.`,
      request: { body: body(JobRequest), headers: SubmitHeaders },
      responses: {
        201: json(JobDetail, "The job (for an array, its task 0), queued."),
        200: json(JobDetail, "The job an earlier request with the same Idempotency-Key created."),
        ...errors(400, 401, 403, 404, 409, 413, 429),
      },
    }),
    async (c) => {
      const requested = c.req.valid("json");
      // An array's submit counts its statements (the bench shows they stay bounded); others need no count.
      const counting = requested.array ? countingD1(c.env.DB) : null;
      const db = createDb(counting?.d1 ?? c.env.DB);
      const principal = c.get("principal");
      const key = c.req.valid("header")["Idempotency-Key"] ?? null;
      const requestHash = key ? await sha256Hex(JSON.stringify(requested)) : null;
      const { job, created } = await submitJob({ db, env: c.env, waitUntil: (p) => c.executionCtx.waitUntil(p) }, principal, requested, { idempotencyKey: key, requestHash });
      if (counting) c.header("gridx-d1-statements", String(counting.statements()));
      return c.json(await fullJobView(createDb(c.env.DB), job), created ? 201 : 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/",
      summary: "List jobs, newest first",
      request: { query: ListQuery },
      responses: { 200: json(JobPage, "A page of jobs; `next_cursor` is null on the last page."), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const principal = c.get("principal");
      const db = createDb(c.env.DB);
      // Another project's name lists nothing, as an unknown one does.
      const page = await listJobs(db, { ...q, projects: readableProjects(principal) });
      const pending = await pendingReasons(db, page.jobs);
      return c.json({ jobs: page.jobs.map((j) => jobView(j, pending.get(j.id) ?? null)), next_cursor: page.nextCursor }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}",
      summary: "A job, with the tail of its output",
      request: { params: JobParams },
      responses: { 200: json(JobDetail, "The job, with the last 64 KiB of stdout and stderr of its latest attempt."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      return c.json(await fullJobView(db, await mustGetJob(db, c.get("principal"), c.req.valid("param").id)), 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/{id}/cancel",
      summary: "Cancel a job",
      description: `${user.description} A running container gets SIGTERM, then SIGKILL; canceling a canceled job is a no-op.`,
      request: { params: JobParams },
      responses: { 200: json(JobDetail, "The job, canceled."), ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const job = await mustGetJob(db, c.get("principal"), c.req.valid("param").id, "member");
      if (job.status === "completed" || job.status === "failed") {
        throw new AppError("conflict", `job ${job.id} already finished with status ${job.status}`);
      }
      const after = job.status === "canceled" ? job : await coordinatorFor(c.env, job.pool).cancelJob(job.pool, job.id);
      if (job.status !== "canceled") await audit(c, "job.cancel", { project: job.project, target: job.id });
      return c.json(await fullJobView(db, after ?? job), 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "delete",
      path: "/{id}",
      summary: "Delete a finished job, with its logs and artifacts",
      description: `${user.description} Members of its project. The same deletion as retention's (docs/retention.md): its rows, attempts, events, log and artifacts, in D1 and R2. A job that has not finished, or that an unfinished job still needs (a dependent, its array, an artifact input), is a 409 saying why.`,
      request: { params: JobParams },
      responses: { 204: { description: "Deleted." }, ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const job = await mustGetJob(db, c.get("principal"), c.req.valid("param").id, "member");
      const none = { dependents: false, arrayTasks: false, readers: false, attempts: false };
      const refusal = deletionRefusal(job, isTerminal(job.status) ? await liveNeedsOf(db, job.id) : none);
      if (refusal) throw new AppError("conflict", refusal);
      const objects = await purgeJobs({ db, bucket: c.env.BUCKET }, [job.id], "job");
      await audit(c, "job.delete", { project: job.project, target: job.id, detail: { status: job.status, objects } });
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}/artifacts",
      summary: "The latest attempt's artifacts",
      request: { params: JobParams },
      responses: { 200: json(ArtifactList, "Every file the job left in /work/output, with its size and SHA-256."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const job = await mustGetJob(db, c.get("principal"), c.req.valid("param").id);
      return c.json({ artifacts: job.attempt > 0 ? (await listArtifacts(db, job.id, job.attempt)).map(artifactView) : [] }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      // The name may span path segments (`out/result.txt`).
      path: "/{id}/artifacts/{name{.+}}",
      summary: "Download an artifact",
      request: { params: ArtifactParams, query: TtlQuery },
      responses: {
        302: { description: "A redirect to a presigned GET of the artifact's bytes.", headers: z.object({ location: z.string() }) },
        ...errors(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const { id, name } = c.req.valid("param");
      const job = await mustGetJob(db, c.get("principal"), id);
      const artifact = job.attempt > 0 ? await getArtifact(db, job.id, job.attempt, name) : undefined;
      if (!artifact) throw new AppError("not_found", `job ${job.id} has no artifact ${name}`);
      const { url } = await new ObjectStore(c.env.BUCKET, settingsOf(c.env)).presign("GET", artifact.key, { ttlS: c.req.valid("query").ttl_s });
      return c.redirect(url, 302);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}/logs",
      summary: "Log lines of every attempt, or a live stream of them",
      request: { params: JobParams, query: LogsQuery },
      responses: {
        200: {
          description:
            "Without `follow`, a page of at most LOG_PAGE_BYTES of lines (default 1 MiB; follow `next_cursor` while `more`), or with `tail`, the newest lines. With `follow=1`, server-sent events pushed as the agent sends them: `log` events (data: a LogLine, id: its cursor) until the job ends, then one `end` event (data: `{status, exit_code, failure_reason}`). Resume with `Last-Event-ID` or `after`: each line exactly once. A quiet stream sends a comment every FOLLOW_KEEPALIVE_S; after FOLLOW_MAX_S it sends `resume` (data: `{after}`) and closes, and the client reconnects from that cursor. The token and its membership are checked again every 30 s: if either is gone, one `error` event ends the stream.",
          content: {
            "application/json": { schema: LogPage },
            "text/event-stream": { schema: z.string().openapi({ description: "event: log | end | resume | error" }) },
          },
        },
        ...errors(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const db = createDb(c.env.DB);
      const principal = c.get("principal");
      const job = await mustGetJob(db, principal, c.req.valid("param").id);
      // A reconnecting EventSource sends Last-Event-ID and repeats its first URL: the header is newer.
      const start = cursorFrom(c.req.header("last-event-id") ?? q.after);
      const settings = settingsOf(c.env);
      if (q.follow !== "1" && q.follow !== "true") {
        if (q.tail !== undefined) {
          const lines = await newestBatches(db, job.id, Math.min(q.tail, settings.LOG_PAGE_BYTES));
          const last = lines.at(-1);
          return c.json({ lines: lines.map(publicLine), next_cursor: last ? formatCursor({ attempt: last.attempt, seq: last.seq }) : null, more: false, status: job.status }, 200);
        }
        const page = await readLogPage({ db, bucket: c.env.BUCKET }, job.id, start, settings.LOG_PAGE_BYTES);
        return c.json({ lines: page.lines.map(publicLine), next_cursor: page.cursor ? formatCursor(page.cursor) : null, more: page.more, status: job.status }, 200);
      }
      const follow = new URL("https://log-stream/follow");
      follow.searchParams.set("job", job.id);
      if (start) follow.searchParams.set("after", formatCursor(start));
      const upstream = await logStreamOf(c.env, job.id).fetch(follow.toString());
      return relay(upstream, () => stillReads(db, c.env, bearerOf(c) ?? undefined, principal, job.project), FOLLOW_REAUTH_MS);
    },
  );

/** Whether a follower's token still resolves and still reads the project (a dashboard session is checked once). */
export async function stillReads(db: Db, env: { GRIDX_ADMIN_TOKEN?: string }, bearer: string | undefined, principal: Principal, project: string): Promise<boolean> {
  if (!bearer) return standingIn(principal, project) !== null;
  const again = await resolveSecret(db, bearer, env.GRIDX_ADMIN_TOKEN);
  return again !== null && standingIn(again.principal, project) !== null;
}
