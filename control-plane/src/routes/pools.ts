import { Hono } from "hono";
import { validator } from "hono/validator";
import { z } from "zod";
import { PoolName } from "../../../protocol/index.ts";
import { createDb } from "../db/client.ts";
import { poolSeries, poolSummaries } from "../db/reports.ts";
import type { AppEnv } from "../env.ts";
import { requireAuth } from "../middleware/auth.ts";
import { parseWith } from "../middleware/validate.ts";
import { policyFor, settingsOf } from "../settings.ts";

/** Buckets in a stats series, whatever the window. */
const STATS_BUCKETS = 60;

const StatsQuery = z.object({
  /** The window, ending now; 60 minutes unless given. */
  minutes: z.coerce.number().int().min(1).max(7 * 24 * 60).optional(),
});

/** Read-only views of pools: what they hold now, and how they have been doing. */
export const poolRoutes = new Hono<AppEnv>()
  .use(requireAuth("admin", "user"))
  .get("/", async (c) => {
    const settings = settingsOf(c.env);
    const pools = await poolSummaries(createDb(c.env.DB));
    return c.json({ pools: pools.map((p) => ({ ...p, policy: policyFor(settings, p.pool) })) });
  })
  .get(
    "/:pool/stats",
    validator("query", (query) => parseWith(StatsQuery, query)),
    async (c) => {
      const pool = parseWith(PoolName, c.req.param("pool"), "pool");
      const minutes = c.req.valid("query").minutes ?? 60;
      const bucketMs = Math.ceil((minutes * 60_000) / STATS_BUCKETS);
      return c.json({ pool, ...(await poolSeries(createDb(c.env.DB), pool, { now: Date.now(), bucketMs, buckets: STATS_BUCKETS })) });
    },
  );
