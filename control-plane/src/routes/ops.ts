import { createRoute, z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { PROTOCOL_VERSION } from "../../../protocol/index.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import { COUNTER_HELP, COUNTERS, type Sample } from "../coordinator/metrics.ts";
import { createDb } from "../db/client.ts";
import type { Bindings } from "../env.ts";
import { access, errors, json, router } from "../openapi.ts";
import { deepHealth } from "../fleet/deep-health.ts";
import { requireAuth } from "../middleware/auth.ts";
import { Health } from "../schemas.ts";

/** Upper bounds of the dispatch-latency histogram, in seconds. */
export const DISPATCH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const label = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** Pools whose coordinators are asked for their counters, at most: a scrape stays bounded. */
const METRICS_POOLS = 200;

/**
 * Prometheus text exposition of what D1 records, and of each pool coordinator's own counters
 * (refused agent messages, settlement retries, alarm failures).
 */
async function renderMetrics(env: Bindings): Promise<string> {
  const db = createDb(env.DB);
  const bucketCols = DISPATCH_BUCKETS.map((b, i) => `SUM(CASE WHEN a.assigned_at - a.queued_at <= ${b * 1000} THEN 1 ELSE 0 END) AS b${i}`).join(", ");
  const [byState, workers, latency] = await Promise.all([
    db.all<{ pool: string; status: string; n: number }>(sql`SELECT pool, status, COUNT(*) AS n FROM jobs GROUP BY pool, status`),
    db.all<{ pool: string; n: number }>(sql`SELECT pool, COUNT(*) AS n FROM workers WHERE online = 1 GROUP BY pool`),
    db.all<Record<string, number | string>>(
      sql.raw(`SELECT j.pool AS pool, COUNT(*) AS n, COALESCE(SUM(a.assigned_at - a.queued_at), 0) AS total, ${bucketCols} FROM attempts a JOIN jobs j ON j.id = a.job_id GROUP BY j.pool`),
    ),
  ]);
  const out: string[] = [];
  out.push("# HELP gridx_jobs Jobs by pool and state.", "# TYPE gridx_jobs gauge");
  for (const r of byState) out.push(`gridx_jobs{pool="${label(r.pool)}",state="${r.status}"} ${r.n}`);
  out.push("# HELP gridx_queue_depth Jobs waiting for a worker.", "# TYPE gridx_queue_depth gauge");
  const pools = [...new Set(byState.map((r) => r.pool))];
  for (const pool of pools) {
    const queued = byState.find((r) => r.pool === pool && r.status === "queued")?.n ?? 0;
    out.push(`gridx_queue_depth{pool="${label(pool)}"} ${queued}`);
  }
  out.push("# HELP gridx_workers_online Connected workers.", "# TYPE gridx_workers_online gauge");
  for (const r of workers) out.push(`gridx_workers_online{pool="${label(r.pool)}"} ${r.n}`);
  out.push("# HELP gridx_dispatch_latency_seconds Time from entering the queue to assignment.", "# TYPE gridx_dispatch_latency_seconds histogram");
  for (const r of latency) {
    const pool = label(String(r.pool));
    DISPATCH_BUCKETS.forEach((b, i) => out.push(`gridx_dispatch_latency_seconds_bucket{pool="${pool}",le="${b}"} ${r[`b${i}`] ?? 0}`));
    out.push(`gridx_dispatch_latency_seconds_bucket{pool="${pool}",le="+Inf"} ${r.n}`);
    out.push(`gridx_dispatch_latency_seconds_sum{pool="${pool}"} ${Number(r.total) / 1000}`);
    out.push(`gridx_dispatch_latency_seconds_count{pool="${pool}"} ${r.n}`);
  }
  out.push(...(await coordinatorCounters(env, db)));
  return out.join("\n") + "\n";
}

async function coordinatorCounters(env: Bindings, db: ReturnType<typeof createDb>): Promise<string[]> {
  const pools = await db.all<{ pool: string }>(sql`SELECT pool FROM workers UNION SELECT pool FROM jobs ORDER BY pool LIMIT ${METRICS_POOLS}`);
  const samples = await Promise.all(
    pools.map(async ({ pool }) => {
      try {
        return { pool, samples: await coordinatorFor(env, pool).metricSamples(pool) };
      } catch (err) {
        console.error(`metrics: the coordinator of ${pool} did not answer`, err instanceof Error ? err.message : err);
        return { pool, samples: [] as Sample[] };
      }
    }),
  );
  const out: string[] = [];
  for (const name of Object.values(COUNTERS)) {
    out.push(`# HELP ${name} ${COUNTER_HELP[name]}`, `# TYPE ${name} counter`);
    for (const { pool, samples: mine } of samples) {
      for (const s of mine.filter((m) => m.name === name)) {
        const labels = [`pool="${label(pool)}"`, ...Object.entries(s.labels).map(([k, v]) => `${k}="${label(v)}"`)].join(",");
        out.push(`${name}{${labels}} ${s.value}`);
      }
    }
  }
  return out;
}

const tags = ["ops"];

export const opsRoutes = router()
  .openapi(
    createRoute({
      tags,
      method: "get",
      path: "/health",
      summary: "Liveness, and the agent protocol version; with deep=1 (admin), every setting checked",
      description: "Needs no token. `?deep=1` needs the admin token and checks for real what a deployment needs: the vars parse, GRIDX_ADMIN_TOKEN and SECRETS_KEY are set and well-formed, the endpoint accepts the S3 keys, the R2 binding answers, D1 has this build's migrations. The answer is 200 either way (the control plane answered); `ok` is false and `checks` names the setting to fix when one failed.",
      request: { query: z.object({ deep: z.enum(["0", "1", "true", "false"]).optional() }) },
      responses: { 200: json(Health, "The control plane answers; with deep=1, each check."), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const deep = c.req.valid("query").deep;
      if (deep !== "1" && deep !== "true") return c.json({ ok: true, protocol_version: PROTOCOL_VERSION }, 200);
      const refused = await requireAuth("admin")(c, async () => undefined);
      if (refused) return refused as never;
      const checks = await deepHealth(c.env);
      return c.json({ ok: checks.every((k) => k.ok), protocol_version: PROTOCOL_VERSION, checks }, 200);
    },
  )
  .openapi(
    createRoute({
      ...access("admin", "user"),
      tags,
      method: "get",
      path: "/metrics",
      summary: "Prometheus metrics",
      responses: {
        200: {
          description: "Jobs by pool and state, queue depth, workers online, the dispatch latency histogram, and each pool coordinator's counters (refused and fenced agent messages, settlement retries, alarm and handler failures), in the Prometheus text format.",
          content: { "text/plain": { schema: z.string() } },
        },
        ...errors(401, 403),
      },
    }),
    async (c) => c.text(await renderMetrics(c.env), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }),
  );
