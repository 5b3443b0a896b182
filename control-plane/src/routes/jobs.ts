import { createRoute, z } from "@hono/zod-openapi";
import { JobStatus, JobTag, ProjectName, type JobSpec, type RepoSource } from "../../../protocol/index.ts";
import { readableProjects, requireRole, standingIn } from "../auth/access.ts";
import { actorName, type Principal } from "../auth/principal.ts";
import { resolveSecret, sha256Hex } from "../auth/tokens.ts";
import { bearerOf } from "../middleware/auth.ts";
import { audit } from "../audit.ts";
import { pendingReasons, usageOf } from "../db/projects.ts";
import { queueRefusal } from "../quotas.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import { createDb, type Db } from "../db/client.ts";
import { findByIdempotencyKey, insertJob, jobView, listJobs, type JobRow } from "../db/jobs.ts";
import { datasetsByIds } from "../db/datasets.ts";
import { mustGetJob, mustGetProject, noProject } from "./guards.ts";
import { artifactView, getArtifact, listArtifacts } from "../db/artifacts.ts";
import { secretsByNames } from "../db/secrets.ts";
import { getPoolSandbox } from "../db/pools.ts";
import { sandboxRefusal, withPoolRuntime } from "../sandbox-policy.ts";
import { ObjectStore } from "../storage/object-store.ts";
import { formatCursor, newestBatches, parseCursor, publicLine, tailStream, type LogCursor } from "../db/logs.ts";
import { logStreamOf } from "../logs/log-stream.ts";
import { jobEventsWritten } from "../events/notify.ts";
import { readLogPage } from "../logs/store.ts";
import { relay } from "../streams/relay.ts";
import { AppError } from "../errors.ts";
import { newId } from "../ids.ts";
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

async function fullJobView(db: Db, job: JobRow) {
  const [stdout, stderr, artifacts, pending] = await Promise.all([
    job.attempt > 0 ? tailStream(db, job.id, job.attempt, "stdout") : "",
    job.attempt > 0 ? tailStream(db, job.id, job.attempt, "stderr") : "",
    job.attempt > 0 ? listArtifacts(db, job.id, job.attempt) : [],
    pendingReasons(db, [job]),
  ]);
  return { ...jobView(job, pending.get(job.id) ?? null), spec: job.spec as JobSpec, stdout, stderr, artifacts: artifacts.map(artifactView) };
}

/**
 * Secrets and datasets are usable only by jobs of their own project, and each one a job names must exist
 * there, so a typo fails now and not on an agent. A repo that names another project's
 * credentials is refused whatever the caller's role there: the agent would send them to a
 * server the job chooses.
 */
async function requireProjectResources(db: Db, spec: JobSpec) {
  const repo: RepoSource | undefined = spec.task.kind === "repo" ? spec.task.repo : undefined;
  // Every secret the job names, with the field that names it, checked against one read.
  const named: [field: string, name: string][] = [];
  for (const side of ["code", "env"] as const) {
    const name = repo?.[`${side}_credentials`];
    const field = `repo.${side}_credentials`;
    if (!name) continue;
    if (repo!.project !== undefined && repo!.project !== spec.project) {
      throw new AppError("forbidden", `${field}: secrets are usable only by jobs of their own project; this job is in ${spec.project}, the secret in ${repo!.project}`, field);
    }
    named.push([field, name]);
  }
  if (spec.task.kind === "command" && spec.task.command.registry_credentials) named.push(["command.registry_credentials", spec.task.command.registry_credentials]);
  for (const [env, name] of Object.entries(spec.secrets)) named.push([`secrets.${env}`, name]);
  if (named.length) {
    const have = new Set((await secretsByNames(db, spec.project, [...new Set(named.map(([, n]) => n))])).map((r) => r.name));
    const missing = named.find(([, name]) => !have.has(name));
    if (missing) throw new AppError("validation_failed", `${missing[0]}: project ${spec.project} has no secret ${missing[1]}`, missing[0]);
  }
  // Inputs too are the project's own: another project's dataset reads as one that does not exist.
  if (spec.inputs.length) {
    const own = new Set((await datasetsByIds(db, spec.inputs.map((i) => i.dataset))).filter((d) => d.project === spec.project).map((d) => d.id));
    const i = spec.inputs.findIndex((input) => !own.has(input.dataset));
    if (i >= 0) throw new AppError("validation_failed", `inputs.${i}.dataset: project ${spec.project} has no dataset ${spec.inputs[i]!.dataset}`, `inputs.${i}.dataset`);
  }
}

/** A submit into a project must find it, and its queue quota with room. */
async function admitSubmit(db: Db, principal: Principal, spec: JobSpec) {
  const { project } = await mustGetProject(db, principal, spec.project, "member", "project");
  if (project.quotas.max_queued_jobs === undefined) return;
  const usage = (await usageOf(db, [spec.project])).get(spec.project)!;
  const hit = queueRefusal(project.quotas, usage, 1);
  if (hit) throw new AppError("too_many_requests", `project: ${hit.message}`, "project", { quota: hit.quota, limit: hit.limit, usage: hit.usage });
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
      summary: "Submit a job",
      request: { body: body(JobRequest), headers: SubmitHeaders },
      responses: {
        201: json(JobDetail, "The job, queued."),
        200: json(JobDetail, "The job an earlier request with the same Idempotency-Key created."),
        ...errors(400, 401, 403, 404, 409, 413, 429),
      },
    }),
    async (c) => {
      const requested = c.req.valid("json");
      const db = createDb(c.env.DB);
      const principal = c.get("principal");
      // Before the retry lookup and the pool's policy, so neither says anything to someone outside the project.
      requireRole(principal, requested.project, "member", noProject(requested.project, "project"));
      const policy = (await getPoolSandbox(db, requested.pool)).sandbox;
      const spec = withPoolRuntime(requested, policy);
      const refusal = sandboxRefusal(spec, policy, settingsOf(c.env).ALLOWED_IMAGES);
      if (refusal) throw new AppError("validation_failed", `${refusal.field}: ${refusal.message}`, refusal.field);
      const key = c.req.valid("header")["Idempotency-Key"] ?? null;
      const requestHash = key ? await sha256Hex(JSON.stringify(requested)) : null;
      // A retry gets its job even when the queue has filled since: it adds nothing to it.
      if (key) {
        const existing = await findByIdempotencyKey(db, principal.tokenId, key);
        if (existing) {
          if (existing.requestHash !== requestHash) throw new AppError("conflict", "Idempotency-Key was already used for a different request", "Idempotency-Key");
          return c.json(await fullJobView(db, existing), 200);
        }
      }
      await admitSubmit(db, principal, spec);
      await requireProjectResources(db, spec);
      const now = Date.now();
      const id = newId("j", now);
      const job = await insertJob(db, { id, spec, createdBy: principal.tokenId, submittedBy: actorName(principal), idempotencyKey: key, requestHash, now });
      // The job is stored, so the answer need not wait for the coordinator; if the nudge is
      // lost, the pool's coordinator finds the job on its next sweep or agent hello.
      c.executionCtx.waitUntil(
        coordinatorFor(c.env, spec.pool)
          .jobQueued(spec.pool)
          .catch((err: unknown) => console.error(`could not notify the ${spec.pool} coordinator of ${job.id}`, err)),
      );
      if (job.id === id) c.executionCtx.waitUntil(jobEventsWritten(c.env, [spec.project]));
      const view = await fullJobView(db, job);
      return job.id === id ? c.json(view, 201) : c.json(view, 200);
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
