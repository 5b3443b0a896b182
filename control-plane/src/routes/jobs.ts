import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { JobRequest, JobStatus, TERMINAL_STATUSES, type RepoSource } from "../../../protocol/index.ts";
import { sha256Hex } from "../auth/tokens.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import { createDb, type Db } from "../db/client.ts";
import { findByIdempotencyKey, getJob, insertJob, jobView, listJobs, type JobRow } from "../db/jobs.ts";
import { artifactView, getArtifact, listArtifacts } from "../db/artifacts.ts";
import { getSecret } from "../db/secrets.ts";
import { ObjectStore } from "../storage/object-store.ts";
import { formatCursor, parseCursor, readLog, tailStream, type LogCursor } from "../db/logs.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { newId } from "../ids.ts";
import { requireAuth } from "../middleware/auth.ts";
import { jsonBody, parseWith } from "../middleware/validate.ts";
import { settingsOf } from "../settings.ts";

/** How often a following log reader looks for new lines. */
const FOLLOW_POLL_MS = 500;
/** Log batches per page of `GET /v1/jobs/:id/logs`. */
const LOG_PAGE_CHUNKS = 200;

const ListQuery = z.object({
  status: JobStatus.optional(),
  pool: z.string().max(63).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(64).optional(),
});
const LogsQuery = z.object({
  follow: z.enum(["0", "1", "true", "false"]).optional(),
  after: z.string().max(40).optional(),
});
const IdempotencyKey = z.string().min(1).max(255).regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces");

async function mustGetJob(db: Db, id: string): Promise<JobRow> {
  const job = await getJob(db, id);
  if (!job) throw new AppError("not_found", `no job ${id}`);
  return job;
}

async function fullJobView(db: Db, job: JobRow) {
  const [stdout, stderr, artifacts] =
    job.attempt > 0
      ? await Promise.all([tailStream(db, job.id, job.attempt, "stdout"), tailStream(db, job.id, job.attempt, "stderr"), listArtifacts(db, job.id, job.attempt)])
      : ["", "", []];
  return { ...jobView(job), spec: job.spec, stdout, stderr, artifacts: artifacts.map(artifactView) };
}

/** A repo job may only name secrets its project has, so a typo fails now and not on an agent. */
async function requireCredentials(db: Db, repo: RepoSource) {
  for (const side of ["code", "env"] as const) {
    const name = repo[`${side}_credentials`];
    if (name && !(await getSecret(db, repo.project, name))) {
      throw new AppError("validation_failed", `repo.${side}_credentials: project ${repo.project} has no secret ${name}`, `repo.${side}_credentials`);
    }
  }
}

function cursorFrom(raw: string | undefined): LogCursor | null {
  if (!raw) return null;
  const cursor = parseCursor(raw);
  if (!cursor) throw new AppError("validation_failed", "after: a cursor as returned in next_cursor, such as 1.42", "after");
  return cursor;
}

export const jobRoutes = new Hono<AppEnv>()
  .use(requireAuth("admin", "user"))
  .post("/", async (c) => {
    const spec = await jsonBody(c, JobRequest);
    if (spec.task.kind === "command" && !settingsOf(c.env).ALLOWED_IMAGES.includes(spec.task.command.image)) {
      throw new AppError("validation_failed", `command.image: ${spec.task.command.image} is not an allowed image (${settingsOf(c.env).ALLOWED_IMAGES.join(", ")})`, "command.image");
    }
    const db = createDb(c.env.DB);
    if (spec.task.kind === "repo") await requireCredentials(db, spec.task.repo);
    const principal = c.get("principal");
    const rawKey = c.req.header("idempotency-key");
    const key = rawKey === undefined ? null : parseWith(IdempotencyKey, rawKey, "Idempotency-Key");
    const requestHash = key ? await sha256Hex(JSON.stringify(spec)) : null;
    if (key) {
      const existing = await findByIdempotencyKey(db, principal.tokenId, key);
      if (existing) {
        if (existing.requestHash !== requestHash) throw new AppError("conflict", "Idempotency-Key was already used for a different request", "Idempotency-Key");
        return c.json(await fullJobView(db, existing), 200);
      }
    }
    const now = Date.now();
    const id = newId("j", now);
    const job = await insertJob(db, { id, spec, createdBy: principal.tokenId, idempotencyKey: key, requestHash, now });
    // The job is stored, so the answer need not wait for the coordinator; if the nudge is
    // lost, the pool's coordinator finds the job on its next sweep or agent hello.
    c.executionCtx.waitUntil(
      coordinatorFor(c.env, spec.pool)
        .jobQueued(spec.pool)
        .catch((err: unknown) => console.error(`could not notify the ${spec.pool} coordinator of ${job.id}`, err)),
    );
    return c.json(await fullJobView(db, job), job.id === id ? 201 : 200);
  })
  .get("/", async (c) => {
    const q = parseWith(ListQuery, c.req.query());
    const page = await listJobs(createDb(c.env.DB), q);
    return c.json({ jobs: page.jobs.map(jobView), next_cursor: page.nextCursor });
  })
  .get("/:id", async (c) => {
    const db = createDb(c.env.DB);
    return c.json(await fullJobView(db, await mustGetJob(db, c.req.param("id"))));
  })
  .post("/:id/cancel", async (c) => {
    const db = createDb(c.env.DB);
    const job = await mustGetJob(db, c.req.param("id"));
    if (job.status === "completed" || job.status === "failed") {
      throw new AppError("conflict", `job ${job.id} already finished with status ${job.status}`);
    }
    const after = job.status === "canceled" ? job : await coordinatorFor(c.env, job.pool).cancelJob(job.pool, job.id);
    return c.json(await fullJobView(db, after ?? job));
  })
  .get("/:id/artifacts", async (c) => {
    const db = createDb(c.env.DB);
    const job = await mustGetJob(db, c.req.param("id"));
    return c.json({ artifacts: job.attempt > 0 ? (await listArtifacts(db, job.id, job.attempt)).map(artifactView) : [] });
  })
  .get("/:id/artifacts/:name{.+}", async (c) => {
    const db = createDb(c.env.DB);
    const job = await mustGetJob(db, c.req.param("id"));
    const name = c.req.param("name");
    const q = parseWith(z.object({ ttl_s: z.coerce.number().int().min(1).max(3600).optional() }), c.req.query());
    const artifact = job.attempt > 0 ? await getArtifact(db, job.id, job.attempt, name) : undefined;
    if (!artifact) throw new AppError("not_found", `job ${job.id} has no artifact ${name}`);
    const { url } = await new ObjectStore(c.env.BUCKET, settingsOf(c.env)).presign("GET", artifact.key, { ttlS: q.ttl_s });
    return c.redirect(url, 302);
  })
  .get("/:id/logs", async (c) => {
    const q = parseWith(LogsQuery, c.req.query());
    const db = createDb(c.env.DB);
    const job = await mustGetJob(db, c.req.param("id"));
    const start = cursorFrom(q.after ?? c.req.header("last-event-id"));
    if (q.follow !== "1" && q.follow !== "true") {
      const page = await readLog(db, job.id, start, LOG_PAGE_CHUNKS);
      return c.json({ lines: page.lines, next_cursor: page.cursor ? formatCursor(page.cursor) : null, status: job.status });
    }
    return streamSSE(c, async (stream) => {
      let cursor = start;
      const abort = { requested: false };
      stream.onAbort(() => {
        abort.requested = true;
      });
      while (!abort.requested) {
        // Read the status before the lines, so lines written just before the end are not missed.
        const current = (await getJob(db, job.id)) ?? job;
        const page = await readLog(db, job.id, cursor, LOG_PAGE_CHUNKS);
        cursor = page.cursor;
        for (const line of page.lines) {
          await stream.writeSSE({ event: "log", id: formatCursor({ attempt: line.attempt, seq: line.seq }), data: JSON.stringify(line) });
        }
        if (TERMINAL_STATUSES.includes(current.status) && page.lines.length === 0) {
          await stream.writeSSE({ event: "end", data: JSON.stringify({ status: current.status, exit_code: current.exitCode, failure_reason: current.failureReason }) });
          return;
        }
        if (page.lines.length === 0) await stream.sleep(FOLLOW_POLL_MS);
      }
    });
  });
