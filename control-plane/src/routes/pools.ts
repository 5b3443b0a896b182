import { createRoute, z } from "@hono/zod-openapi";
import { PoolName } from "../../../protocol/index.ts";
import { readableProjects } from "../auth/access.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import { createDb } from "../db/client.ts";
import { listProjects } from "../db/projects.ts";
import { poolKnown, poolSeries, poolSummaries, queuedByProject } from "../db/reports.ts";
import { getPoolSandbox, putPoolSandbox } from "../db/pools.ts";
import { audit } from "../audit.ts";
import { actorName } from "../auth/principal.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { PoolList, PoolSandbox, PoolSandboxView, PoolStats, PoolUpgrade, PoolUpgradeRequest } from "../schemas.ts";
import { getBundle, getPoolUpgrade, poolWorkerUpgrades, putPoolUpgrade } from "../db/upgrades.ts";
import { AppError } from "../errors.ts";
import type { Db } from "../db/client.ts";
import { policyFor, settingsOf } from "../settings.ts";

/** Buckets in a stats series, whatever the window. */
const STATS_BUCKETS = 60;

/** Where every project the caller cannot read is counted, so their names do not leak. */
const OTHER = "other";

interface ProjectShare {
  project: string;
  weight: number;
  share: number;
  usage_slot_s: number;
  running: number;
  queued: number;
}

/**
 * Each project's part of a pool, most usage first, with the projects the caller cannot read
 * (`readable` null: it reads all) added together as "other".
 */
/** A project's decayed use of a pool and the slots it holds there, as its coordinator keeps them. */
type ProjectUsage = { project: string; usage_slot_s: number; running: number };

function projectShares(
  usage: ProjectUsage[],
  queued: ReadonlyMap<string, number>,
  weights: ReadonlyMap<string, number>,
  readable: string[] | null,
): ProjectShare[] {
  const total = usage.reduce((sum, u) => sum + u.usage_slot_s, 0);
  const byName = new Map(usage.map((u) => [u.project, u]));
  const rows = new Map<string, ProjectShare>();
  for (const project of new Set([...byName.keys(), ...queued.keys()])) {
    const u = byName.get(project);
    const name = readable === null || readable.includes(project) ? project : OTHER;
    const row = rows.get(name) ?? { project: name, weight: 0, share: 0, usage_slot_s: 0, running: 0, queued: 0 };
    row.weight += weights.get(project) ?? 1;
    row.usage_slot_s += u?.usage_slot_s ?? 0;
    row.share = total > 0 ? row.usage_slot_s / total : 0;
    row.running += u?.running ?? 0;
    row.queued += queued.get(project) ?? 0;
    rows.set(name, row);
  }
  return [...rows.values()].sort((a, b) => b.usage_slot_s - a.usage_slot_s || (a.project < b.project ? -1 : 1));
}

const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

/** The pool's target version and where each of its workers stands. */
async function upgradeView(db: Db, pool: string) {
  const [target, rows] = await Promise.all([getPoolUpgrade(db, pool), poolWorkerUpgrades(db, pool)]);
  return {
    pool,
    version: target?.version ?? null,
    requested_by: target?.requestedBy ?? null,
    requested_at: iso(target?.requestedAt),
    workers: rows.map((r) => ({
      worker_id: r.id,
      name: r.name,
      online: r.online,
      version: r.version,
      from: r.upgrade?.fromVersion ?? null,
      to: r.upgrade?.toVersion ?? null,
      state: r.upgrade?.state ?? null,
      reason: r.upgrade?.reason ?? null,
      updated_at: iso(r.upgrade?.updatedAt),
    })),
  };
}

const tags = ["pools"];
const user = access("admin", "user");
const admin = access("admin");
const StatsParams = z.object({ pool: PoolName.clone().openapi({ param: { name: "pool", in: "path" }, example: "default" }) });
const StatsQuery = z.object({
  minutes: z.coerce.number().int().min(1).max(7 * 24 * 60).optional().openapi({ description: "The window, ending now; 60 minutes unless given." }),
});

/** Read-only views of pools: what they hold now, and how they have been doing. */
export const poolRoutes = router()
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/",
      summary: "Every pool: unfinished jobs by state, workers, slots in use, policy",
      responses: { 200: json(PoolList, "Pools that have workers or unfinished jobs."), ...errors(401, 403) },
    }),
    async (c) => {
      const settings = settingsOf(c.env);
      const pools = await poolSummaries(createDb(c.env.DB));
      return c.json({ pools: pools.map((p) => ({ ...p, policy: policyFor(settings, p.pool) })) }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{pool}/stats",
      summary: "A pool's throughput and wait over a recent window, in 60 buckets, and each project's fair share",
      request: { params: StatsParams, query: StatsQuery },
      responses: {
        200: json(PoolStats, "Jobs finished by outcome, attempts started and their median wait, per bucket; each project's usage, share, running and queued jobs."),
        ...errors(400, 401, 403),
      },
    }),
    async (c) => {
      const { pool } = c.req.valid("param");
      const minutes = c.req.valid("query").minutes ?? 60;
      const bucketMs = Math.ceil((minutes * 60_000) / STATS_BUCKETS);
      const db = createDb(c.env.DB);
      const [series, usage, queued] = await Promise.all([
        poolSeries(db, pool, { now: Date.now(), bucketMs, buckets: STATS_BUCKETS }),
        // A name no worker or job ever had is not given a coordinator of its own just by asking.
        poolKnown(db, pool).then(async (known): Promise<ProjectUsage[]> => (known ? [...(await coordinatorFor(c.env, pool).fairShare(pool))] : [])),
        queuedByProject(db, pool),
      ]);
      const names = [...new Set([...usage.map((u) => u.project), ...queued.keys()])];
      const weights = new Map((names.length ? await listProjects(db, names) : []).map((p) => [p.name, p.weight]));
      return c.json({ pool, ...series, projects: projectShares(usage, queued, weights, readableProjects(c.get("principal"))) }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{pool}/sandbox",
      summary: "A pool's sandbox policy: runtimes, egress, build network, pullable images",
      request: { params: StatsParams },
      responses: { 200: json(PoolSandboxView, "The policy; a pool nobody configured has the defaults."), ...errors(400, 401, 403) },
    }),
    async (c) => c.json(await getPoolSandbox(createDb(c.env.DB), c.req.valid("param").pool), 200),
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "put",
      path: "/{pool}/sandbox",
      summary: "Set a pool's sandbox policy (admin); it applies to jobs submitted from now on",
      request: { params: StatsParams, body: body(PoolSandbox) },
      responses: { 200: json(PoolSandboxView, "The policy as stored, every default filled in."), ...errors(400, 401, 403, 413) },
    }),
    async (c) => {
      const { pool } = c.req.valid("param");
      const policy = c.req.valid("json");
      const view = await putPoolSandbox(createDb(c.env.DB), pool, policy, actorName(c.get("principal")), Date.now());
      await audit(c, "pool.sandbox", { target: pool, detail: policy });
      return c.json(view, 200);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "post",
      path: "/{pool}/upgrade",
      summary: "Upgrade a pool's agents to a published bundle (admin)",
      description: `${admin.description} Each connected agent running another version downloads the bundle, checks its SHA-256, drains, and restarts into it under its service manager; one that connects later is told at its hello. A new bundle that does not connect is rolled back by the agent. Asking again retries the workers that failed or rolled back.`,
      request: { params: StatsParams, body: body(PoolUpgradeRequest) },
      responses: { 200: json(PoolUpgrade, "The target, and each worker's state as the orders went out."), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const { pool } = c.req.valid("param");
      const { version } = c.req.valid("json");
      const db = createDb(c.env.DB);
      const bundle = await getBundle(db, version);
      if (bundle?.status !== "ready") throw new AppError("validation_failed", `version: no published agent bundle ${version} (POST /v1/agent-bundles, or gridx agent publish)`, "version");
      await putPoolUpgrade(db, pool, version, actorName(c.get("principal")), Date.now());
      await coordinatorFor(c.env, pool).upgradePool(pool);
      await audit(c, "pool.upgrade", { target: pool, detail: { version } });
      return c.json(await upgradeView(db, pool), 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{pool}/upgrade",
      summary: "A pool's agent upgrade: the target version and each worker's from, to, state and reason",
      request: { params: StatsParams },
      responses: { 200: json(PoolUpgrade, "The target (null: none asked for) and every worker of the pool."), ...errors(400, 401, 403) },
    }),
    async (c) => c.json(await upgradeView(createDb(c.env.DB), c.req.valid("param").pool), 200),
  );
