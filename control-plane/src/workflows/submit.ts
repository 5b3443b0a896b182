import { WORKFLOW_LIMITS, type JobSpec, type RepoSource } from "../../../protocol/index.ts";
import { requireRole } from "../auth/access.ts";
import { actorName, type Principal } from "../auth/principal.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import type { Db } from "../db/client.ts";
import { usageOf } from "../db/projects.ts";
import { findByIdempotencyKey, getJob, type JobRow } from "../db/jobs.ts";
import { getPoolSandbox } from "../db/pools.ts";
import { insertBroadcast } from "../db/broadcasts.ts";
import { getWorker } from "../db/workers.ts";
import { secretsByNames } from "../db/secrets.ts";
import type { Bindings } from "../env.ts";
import { AppError, errorText } from "../errors.ts";
import { jobEventsWritten } from "../events/notify.ts";
import { newId } from "../ids.ts";
import { queueRefusal } from "../quotas.ts";
import { mustGetProject, noProject } from "../routes/guards.ts";
import { sandboxRefusal, withPoolRuntime } from "../sandbox-policy.ts";
import { settingsOf } from "../settings.ts";
import { resolveWorkflow, type ResolvedWorkflow } from "./references.ts";
import { settleDependents } from "./settle.ts";

/** What a submit needs: the database, the bindings (to tell coordinators), and a place for work after the answer. */
export interface SubmitContext {
  db: Db;
  env: Bindings;
  waitUntil(p: Promise<unknown>): void;
  /**
   * A batch's: what its submits read alike (a pool's policy, a project's row) is read once, and
   * the pools and projects to tell are gathered here, to be told once at the end (batch.ts).
   */
  shared?: { reads: Map<string, Promise<unknown>>; pools: Set<string>; projects: Set<string> };
}

/** A read the batch's submits share, made once; outside a batch, made every time. */
const once = <T>(c: SubmitContext, key: string, read: () => Promise<T>): Promise<T> => {
  if (!c.shared) return read();
  let p = c.shared.reads.get(key) as Promise<T> | undefined;
  if (!p) c.shared.reads.set(key, (p = read()));
  return p;
};

export interface SubmitOptions {
  /** With `createdBy`, names the submit: the same pair gives the same job (`created: false`). */
  idempotencyKey?: string | null;
  /** The hash of the request the key was first used with; another request with the key is a 409. */
  requestHash?: string | null;
  /** Whose idempotency keys these are: the caller's token, unless a schedule submits. */
  createdBy?: string;
  scheduleId?: string;
  rerunOf?: string;
  /** One job per worker, each pinned to its worker, all recorded as this broadcast (db/broadcasts.ts). */
  broadcast?: { id: string; workers: readonly string[] };
}

/** Tasks written per INSERT statement at most, and bytes of their rows: each bound JSON parameter stays under D1's 2 MB. */
const TASKS_PER_STATEMENT = 1000;
const ROW_BYTES_PER_STATEMENT = 1_500_000;

/**
 * Submits one job, or an array's tasks, as `principal` (a member of the job's project): checks
 * the pool's sandbox policy, the project's queue quota, every secret, dataset, artifact and
 * dependency it names, then writes the job (or every task, its dependency edges and the array)
 * in one transaction. A job that depends on others is settled at once, so one whose parents
 * have ended already runs or fails now. Throws AppError, naming the field, when refused.
 */
export async function submitJob(c: SubmitContext, principal: Principal, requested: JobSpec, opts: SubmitOptions = {}): Promise<{ job: JobRow; created: boolean }> {
  const { db } = c;
  // Before the retry lookup and the pool's policy, so neither says anything to someone outside the project.
  requireRole(principal, requested.project, "member", noProject(requested.project, "project"));
  const policy = (await once(c, `pool:${requested.pool}`, () => getPoolSandbox(db, requested.pool))).sandbox;
  const spec = withPoolRuntime(requested, policy);
  const refusal = sandboxRefusal(spec, policy, settingsOf(c.env).ALLOWED_IMAGES);
  if (refusal) throw new AppError("validation_failed", `${refusal.field}: ${refusal.message}`, refusal.field);
  if (spec.worker) await requireWorker(c, spec.pool, spec.worker);
  const createdBy = opts.createdBy ?? principal.tokenId;
  const key = opts.idempotencyKey ?? null;
  // A retry gets its job even when the queue has filled since: it adds nothing to it.
  if (key) {
    const existing = await findByIdempotencyKey(db, createdBy, key);
    if (existing) {
      if (existing.requestHash !== (opts.requestHash ?? null)) throw new AppError("conflict", "Idempotency-Key was already used for a different request", "Idempotency-Key");
      return { job: existing, created: false };
    }
  }
  // An array request (index null) becomes `count` tasks, one of them too; a task's copy (a rerun) stays one job.
  const isArray = spec.array !== null && spec.array.index === null;
  const count = isArray ? spec.array!.count : (opts.broadcast?.workers.length ?? 1);
  await admitSubmit(c, principal, spec, count);
  await requireSecrets(db, spec);
  const workflow = await resolveWorkflow(db, spec, isArray ? count : null);
  const template = { ...spec, inputs: workflow.inputs };
  const bytes = JSON.stringify(template).length * count;
  if (count > 1 && bytes > WORKFLOW_LIMITS.array_spec_bytes) {
    const field = isArray ? "array.count" : "workers";
    throw new AppError("payload_too_large", `${field}: ${count} ${isArray ? "tasks" : "jobs"} of this job's ${Math.ceil(bytes / count)}-byte spec are ${bytes} bytes; an array or broadcast holds at most ${WORKFLOW_LIMITS.array_spec_bytes}`, field);
  }
  const now = Date.now();
  const ids = Array.from({ length: count }, () => newId("j", now));
  await db.$client.batch(insertStatements(db, template, workflow, ids, isArray ? newId("a", now) : null, { ...opts, key, createdBy, submittedBy: actorName(principal), now }));
  const first = await getJob(db, ids[0]!);
  if (!first) {
    // Not written: a concurrent request with the same key won, and its job is the answer, if it was this request.
    const winner = (await findByIdempotencyKey(db, createdBy, key!))!;
    if (winner.requestHash !== (opts.requestHash ?? null)) throw new AppError("conflict", "Idempotency-Key was already used for a different request", "Idempotency-Key");
    return { job: winner, created: false };
  }
  if (workflow.edges.length) await settleDependents(db, c.env, ids, now);
  if (c.shared) {
    c.shared.pools.add(spec.pool);
    c.shared.projects.add(spec.project);
  } else announceQueued(c, [spec.pool], [spec.project]);
  return { job: workflow.edges.length ? ((await getJob(db, first.id)) ?? first) : first, created: true };
}

/**
 * Tells the pools' coordinators that jobs were queued and the projects' event readers that
 * events were written, after the answer. A lost notice only delays: coordinators find queued
 * jobs on their sweep, and event readers read by cursor.
 */
export function announceQueued(c: SubmitContext, pools: Iterable<string>, projects: Iterable<string>): void {
  for (const pool of pools) {
    c.waitUntil(
      coordinatorFor(c.env, pool)
        .jobQueued(pool)
        .catch((err: unknown) => console.error(`could not notify the ${pool} coordinator of queued jobs`, errorText(err))),
    );
  }
  c.waitUntil(jobEventsWritten(c.env, projects));
}

/** A job pinned to a worker must name one of its pool's (a worker that exists but is offline is waited for). */
async function requireWorker(c: SubmitContext, pool: string, id: string) {
  const worker = await once(c, `worker:${id}`, () => getWorker(c.db, id));
  if (!worker || worker.pool !== pool) throw new AppError("validation_failed", `worker: pool ${pool} has no worker ${id}`, "worker");
}

/** A submit into a project must find it, and its queue quota with room for every task. */
async function admitSubmit(c: SubmitContext, principal: Principal, spec: JobSpec, count: number) {
  const { db } = c;
  const { project } = await once(c, `project:${spec.project}`, () => mustGetProject(db, principal, spec.project, "member", "project"));
  if (project.quotas.max_queued_jobs === undefined) return;
  const usage = (await usageOf(db, [spec.project])).get(spec.project)!;
  const hit = queueRefusal(project.quotas, usage, count);
  if (hit) throw new AppError("too_many_requests", `project: ${hit.message}`, "project", { quota: hit.quota, limit: hit.limit, usage: hit.usage });
}

/**
 * Secrets are usable only by jobs of their own project, and each one a job names must exist
 * there, so a typo fails now and not on an agent. A repo that names another project's
 * credentials is refused whatever the caller's role there: the agent would send them to a
 * server the job chooses.
 */
async function requireSecrets(db: Db, spec: JobSpec) {
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
  if (named.length === 0) return;
  const have = new Set((await secretsByNames(db, spec.project, [...new Set(named.map(([, n]) => n))])).map((r) => r.name));
  const missing = named.find(([, name]) => !have.has(name));
  if (missing) throw new AppError("validation_failed", `${missing[0]}: project ${spec.project} has no secret ${missing[1]}`, missing[0]);
}

interface InsertMeta extends SubmitOptions {
  key: string | null;
  createdBy: string;
  submittedBy: string;
  now: number;
}

/**
 * The job's rows, in one transaction: the first task alone (it carries the idempotency key),
 * then the other tasks, the array and the edges, each only if that first row was written, so a
 * request that lost an idempotency race writes nothing at all.
 */
function insertStatements(db: Db, spec: JobSpec, workflow: ResolvedWorkflow, ids: string[], arrayId: string | null, m: InsertMeta): D1PreparedStatement[] {
  const hold = workflow.edges.length ? "deps" : null;
  const expiresAt = hold === null && spec.queue_ttl_s !== null ? m.now + spec.queue_ttl_s * 1000 : null;
  const specJson = JSON.stringify(spec);
  const pinned = m.broadcast?.workers;
  const rows = ids.map((id, i) =>
    JSON.stringify([id, arrayId ? i : null, workflow.taskInputs ? JSON.stringify(workflow.taskInputs[i]) : null, i === 0 ? m.key : null, i === 0 ? (m.requestHash ?? null) : null, pinned?.[i] ?? null]),
  );
  const tasks = (from: number, to: number, guard: string | null) =>
    db.$client
      .prepare(SQL.insertJobs)
      .bind(
        `[${rows.slice(from, to).join(",")}]`,
        specJson,
        spec.pool,
        spec.task.kind,
        spec.project,
        spec.name,
        JSON.stringify(spec.tags),
        m.submittedBy,
        spec.priority,
        spec.max_retries,
        m.createdBy,
        m.now,
        arrayId,
        m.rerunOf ?? null,
        m.scheduleId ?? null,
        hold,
        expiresAt,
        guard,
      );
  const statements = [tasks(0, 1, null)];
  for (let from = 1; from < ids.length; ) {
    let to = from;
    for (let bytes = 0; to < ids.length && to - from < TASKS_PER_STATEMENT && bytes + rows[to]!.length < ROW_BYTES_PER_STATEMENT; to++) bytes += rows[to]!.length + 1;
    statements.push(tasks(from, Math.max(to, from + 1), ids[0]!));
    from = Math.max(to, from + 1);
  }
  if (arrayId) statements.push(db.$client.prepare(SQL.insertArray).bind(arrayId, spec.project, spec.pool, spec.name, ids.length, m.submittedBy, m.now, ids[0]));
  if (m.broadcast) {
    const b = { id: m.broadcast.id, project: spec.project, pool: spec.pool, name: spec.name, submittedBy: m.submittedBy, createdAt: m.now };
    statements.push(...insertBroadcast(db, b, ids.map((id, i) => [pinned![i]!, id]), ids[0]!));
  }
  if (workflow.edges.length) {
    const edges = JSON.stringify(workflow.edges.map((e) => [e.parent, e.kind, e.condition]));
    for (let from = 0; from < ids.length; from += TASKS_PER_STATEMENT) {
      statements.push(db.$client.prepare(SQL.insertEdges).bind(JSON.stringify(ids.slice(from, from + TASKS_PER_STATEMENT)), edges, ids[0]));
    }
  }
  return statements;
}

const SQL = {
  // A task's spec is the array's, with its index and (when they are templated) its own inputs; a broadcast's job's, with its worker.
  insertJobs:
    "INSERT INTO jobs (id, pool, kind, project, name, tags, submitted_by, spec, status, priority, max_retries, idempotency_key, request_hash, created_by, created_at, queued_at, array_id, array_index, rerun_of, schedule_id, hold, expires_at) " +
    "SELECT v.id, ?3, ?4, ?5, ?6, ?7, ?8, " +
    "CASE WHEN v.worker IS NOT NULL THEN json_set(?2, '$.worker', v.worker) WHEN v.idx IS NULL THEN json(?2) WHEN v.inputs IS NULL THEN json_set(?2, '$.array.index', v.idx) ELSE json_set(?2, '$.array.index', v.idx, '$.inputs', json(v.inputs)) END, " +
    "'queued', ?9, ?10, v.key, v.hash, ?11, ?12, ?12, ?13, v.idx, ?14, ?15, ?16, ?17 " +
    "FROM (SELECT value ->> 0 AS id, value ->> 1 AS idx, value ->> 2 AS inputs, value ->> 3 AS key, value ->> 4 AS hash, value ->> 5 AS worker FROM json_each(?1)) AS v " +
    "WHERE ?18 IS NULL OR EXISTS (SELECT 1 FROM jobs WHERE id = ?18) ON CONFLICT DO NOTHING",
  insertArray: "INSERT INTO job_arrays (id, project, pool, name, count, submitted_by, created_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?8)",
  insertEdges:
    "INSERT INTO job_deps (child, parent, parent_kind, condition) SELECT t.value, d.value ->> 0, d.value ->> 1, d.value ->> 2 FROM json_each(?1) AS t, json_each(?2) AS d " +
    "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?3) ON CONFLICT DO NOTHING",
} as const;
