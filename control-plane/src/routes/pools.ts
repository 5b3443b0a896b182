import { createRoute, z } from "@hono/zod-openapi";
import { PoolName } from "../../../protocol/index.ts";
import { createDb } from "../db/client.ts";
import { poolSeries, poolSummaries } from "../db/reports.ts";
import { access, errors, json, router } from "../openapi.ts";
import { PoolList, PoolStats } from "../schemas.ts";
import { policyFor, settingsOf } from "../settings.ts";

/** Buckets in a stats series, whatever the window. */
const STATS_BUCKETS = 60;

const tags = ["pools"];
const user = access("admin", "user");
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
      summary: "A pool's throughput and wait over a recent window, in 60 buckets",
      request: { params: StatsParams, query: StatsQuery },
      responses: { 200: json(PoolStats, "Jobs finished by outcome, attempts started and their median wait, per bucket."), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const { pool } = c.req.valid("param");
      const minutes = c.req.valid("query").minutes ?? 60;
      const bucketMs = Math.ceil((minutes * 60_000) / STATS_BUCKETS);
      return c.json({ pool, ...(await poolSeries(createDb(c.env.DB), pool, { now: Date.now(), bucketMs, buckets: STATS_BUCKETS })) }, 200);
    },
  );
