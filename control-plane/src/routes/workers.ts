import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { inArray, sql } from "drizzle-orm";
import { readableProjects } from "../auth/access.ts";
import { attemptsOfWorker, HOLDING } from "../db/attempts.ts";
import { createDb } from "../db/client.ts";
import { attempts } from "../db/schema.ts";
import { getWorker, listWorkers, workerView } from "../db/workers.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { Probe, ProbeList, ProbeRequest, Worker, WorkerDetail, WorkerList } from "../schemas.ts";
import { getProbe, insertProbe, listProbes, probeView } from "../db/probes.ts";
import { newId } from "../ids.ts";
import { audit } from "../audit.ts";
import { settingsOf } from "../settings.ts";

const ListQuery = z.object({
  pool: z.string().max(63).optional(),
  outdated: z.enum(["0", "1", "true", "false"]).optional().openapi({ description: "1: only workers whose agent is older than AGENT_RECOMMENDED_VERSION" }),
  token: z.string().max(64).optional().openapi({ description: "only workers whose agent joined with this agent token (its id): the onboarding page watches for one" }),
});
const WorkerParams = z.object({ id: z.string().max(64).openapi({ example: "w_01jd2x7k8m9n0p1q2r3s4t5v6w" }) });

async function runningCounts(db: ReturnType<typeof createDb>, ids: string[]) {
  if (ids.length === 0) return new Map<string, number>();
  const rows = await db
    .select({ workerId: attempts.workerId, n: sql<number>`count(*)` })
    .from(attempts)
    .where(inArray(attempts.status, HOLDING))
    .groupBy(attempts.workerId);
  return new Map(rows.map((r) => [r.workerId, r.n]));
}

async function mustGetWorker(db: ReturnType<typeof createDb>, id: string) {
  const worker = await getWorker(db, id);
  if (!worker) throw new AppError("not_found", `no worker ${id}`);
  return worker;
}

async function setDrain(c: Context<AppEnv>, id: string, drain: boolean) {
  const db = createDb(c.env.DB);
  const worker = await mustGetWorker(db, id);
  await coordinatorFor(c.env, worker.pool).setWorkerDrain(worker.pool, id, drain);
  const after = (await getWorker(db, id))!;
  return workerView(after, (await runningCounts(db, [id])).get(id) ?? 0, settingsOf(c.env).AGENT_RECOMMENDED_VERSION);
}

/** Probe audit records shown per page. */
const PROBE_PAGE = 100;
/** Attempts a worker's detail reads, newest first: what it holds is among them unless it holds more. */
const RECENT_ATTEMPTS = 50;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

const tags = ["workers"];
const user = access("admin", "user");
const admin = access("admin");

export const workerRoutes = router()
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/",
      summary: "List workers",
      request: { query: ListQuery },
      responses: { 200: json(WorkerList, "Every worker (of a pool), with its capabilities, slots, running jobs and status."), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const db = createDb(c.env.DB);
      const rows = (await listWorkers(db, q.pool)).filter((r) => !q.token || r.tokenId === q.token);
      const running = await runningCounts(db, rows.map((r) => r.id));
      const recommended = settingsOf(c.env).AGENT_RECOMMENDED_VERSION;
      const views = rows.map((r) => workerView(r, running.get(r.id) ?? 0, recommended));
      return c.json({ workers: q.outdated === "1" || q.outdated === "true" ? views.filter((w) => w.outdated) : views }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}",
      summary: "One worker in detail",
      description: `${user.description} Its capabilities, version, warm caches and last heartbeat, the attempts it holds and its latest ${RECENT_ATTEMPTS} attempts (of the projects the caller reads).`,
      request: { params: WorkerParams },
      responses: { 200: json(WorkerDetail, "The worker."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const worker = await mustGetWorker(db, c.req.valid("param").id);
      const readable = readableProjects(c.get("principal"));
      const rows = (await attemptsOfWorker(db, worker.id, RECENT_ATTEMPTS)).filter((a) => readable === null || readable.includes(a.project));
      const attemptsShown = rows.map((a) => ({
        job_id: a.jobId,
        attempt: a.attempt,
        status: a.status,
        project: a.project,
        assigned_at: iso(a.assignedAt)!,
        started_at: iso(a.startedAt),
        finished_at: iso(a.finishedAt),
        exit_code: a.exitCode,
        failure_reason: a.failureReason,
      }));
      const holding = (status: string) => (HOLDING as readonly string[]).includes(status);
      return c.json({ ...workerView(worker, (await runningCounts(db, [worker.id])).get(worker.id) ?? 0, settingsOf(c.env).AGENT_RECOMMENDED_VERSION), holding: attemptsShown.filter((a) => holding(a.status)), recent_attempts: attemptsShown }, 200);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "delete",
      path: "/{id}",
      summary: "Forget an offline worker",
      description: `${admin.description} Its attempts stay in their jobs' history; queued jobs pinned to it (its "worker" field) fail unschedulable; an agent that connects again under its name is a new worker. An online worker is refused (409): drain it and stop its agent first.`,
      request: { params: WorkerParams },
      responses: { 204: { description: "Forgotten." }, ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const worker = await mustGetWorker(db, c.req.valid("param").id);
      // The pool's coordinator forgets it, failing the queued jobs pinned to it first.
      if ((await coordinatorFor(c.env, worker.pool).forgetWorker(worker.pool, worker.id)) === "online") throw new AppError("conflict", `worker ${worker.id} is online; stop its agent first (it is forgotten only while offline)`);
      await audit(c, "worker.delete", { target: worker.id, detail: { pool: worker.pool, name: worker.name } });
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "post",
      path: "/{id}/drain",
      summary: "Stop giving a worker new jobs",
      description: `${admin.description} Running jobs go on; the worker shows \`draining\` until undrained.`,
      request: { params: WorkerParams },
      responses: { 200: json(Worker, "The worker, draining."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const worker = await setDrain(c, c.req.valid("param").id, true);
      await audit(c, "worker.drain", { target: worker.id, detail: { pool: worker.pool, name: worker.name } });
      return c.json(worker, 200);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "post",
      path: "/{id}/undrain",
      summary: "Resume giving a worker jobs",
      request: { params: WorkerParams },
      responses: { 200: json(Worker, "The worker."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const worker = await setDrain(c, c.req.valid("param").id, false);
      await audit(c, "worker.undrain", { target: worker.id, detail: { pool: worker.pool, name: worker.name } });
      return c.json(worker, 200);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "post",
      path: "/{id}/probes",
      summary: "Run a maintenance probe on the worker's host",
      description: `${admin.description} The agent runs the command over SSH only if it is on its allow list; every request is kept for audit.`,
      request: { params: WorkerParams, body: body(ProbeRequest) },
      responses: { 201: json(Probe, "The probe, pending; read the outcome from the list."), ...errors(400, 401, 403, 404, 409, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const db = createDb(c.env.DB);
      const worker = await mustGetWorker(db, c.req.valid("param").id);
      if (!worker.online) throw new AppError("conflict", `worker ${worker.id} is offline; a probe needs a connected agent`);
      const id = newId("pr");
      await insertProbe(db, { id, workerId: worker.id, pool: worker.pool, command: req.command, requestedBy: c.get("principal").tokenId, now: Date.now() });
      await audit(c, "worker.probe", { target: worker.id, detail: { pool: worker.pool, probe_id: id, command: req.command } });
      await coordinatorFor(c.env, worker.pool).runProbe(worker.pool, { id, workerId: worker.id, command: req.command, timeoutS: req.timeout_s });
      return c.json(probeView((await getProbe(db, id))!), 201);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "get",
      path: "/{id}/probes",
      summary: "The worker's probe audit trail",
      request: { params: WorkerParams },
      responses: { 200: json(ProbeList, `The latest ${PROBE_PAGE} probes, newest first.`), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const worker = await mustGetWorker(db, c.req.valid("param").id);
      return c.json({ probes: (await listProbes(db, worker.id, PROBE_PAGE)).map(probeView) }, 200);
    },
  );
