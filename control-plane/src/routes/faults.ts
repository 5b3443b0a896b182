import { Hono } from "hono";
import { z } from "zod";
import { PoolName } from "../../../protocol/index.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import { logStreamOf } from "../logs/log-stream.ts";
import { faultsEnabled } from "../coordinator/faults.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { requireAuth } from "../middleware/auth.ts";

const FaultRequest = z
  .object({
    pool: PoolName,
    /** Aim the fault at this job's log stream (the writer of its log) instead of the pool's coordinator. */
    log_stream_of: z.string().min(1).max(64).optional(),
    /** Fail this many of the coordinator's next D1 calls whose SQL contains `match`. */
    d1: z.object({ fail_next: z.number().int().min(0).max(10_000), match: z.string().min(1).max(200).optional() }).strict().optional(),
    /** Throw the coordinator's instance away, as an eviction or a crash would. */
    reset: z.boolean().optional(),
  })
  .strict();

/**
 * The fault suite's switch into a pool's coordinator. It answers only where the `GRIDX_FAULTS`
 * var is "on", which the tests set and wrangler.toml never does; elsewhere it is a 404 like
 * any unknown path, and it is not part of the OpenAPI document.
 */
export const faultRoutes = new Hono<AppEnv>().post("/faults", async (c, next) => (faultsEnabled(c.env) ? next() : c.notFound()), requireAuth("admin"), async (c) => {
  const parsed = FaultRequest.safeParse(await c.req.json().catch(() => null));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AppError("validation_failed", issue?.message ?? "bad fault request", issue?.path.join(".") || undefined);
  }
  const { pool, d1, reset, log_stream_of: jobId } = parsed.data;
  const plan = d1 && { failNext: d1.fail_next, match: d1.match };
  const result = jobId ? await logStreamOf(c.env, jobId).injectFaults(plan) : await coordinatorFor(c.env, pool).injectFaults(pool, { d1: plan, reset });
  return c.json(result, 200);
});
