/** What becomes of a delivery whose attempt failed: another try at `nextAt`, or given up. */
export type RetryDecision = { status: "pending"; nextAt: number } | { status: "failed" };

export interface BackoffPolicy {
  /** The first retry's delay, seconds; each next one doubles. */
  baseS: number;
  /** The longest delay between two tries, seconds. */
  maxS: number;
  /** Tries stop when the next would come later than this many hours after the delivery was made. */
  retryForH: number;
}

/**
 * When to try a delivery again after its `attempts`-th failed try: exponential backoff with
 * jitter (`random` in [0, 1) spreads the delay over ±20 %, so deliveries that failed together do
 * not retry together), given up once the next try would fall past the retry window.
 *
 * @example
 * retryAfterFailure({ attempts: 1, createdAt, now, random: Math.random() }, { baseS: 30, maxS: 3600, retryForH: 24 })
 */
export function retryAfterFailure(d: { attempts: number; createdAt: number; now: number; random: number }, p: BackoffPolicy): RetryDecision {
  const delayS = Math.min(p.maxS, p.baseS * 2 ** Math.max(0, d.attempts - 1)) * (0.8 + 0.4 * d.random);
  const nextAt = d.now + Math.round(delayS * 1000);
  return nextAt > d.createdAt + p.retryForH * 3_600_000 ? { status: "failed" } : { status: "pending", nextAt };
}

/** A tried delivery's new state, as `recordAttempts` writes it. */
export interface Settled {
  id: string;
  status: "pending" | "delivered" | "failed";
  nextAt: number;
  lastStatus: number | null;
  lastError: string | null;
  finishedAt: number | null;
}

/**
 * What one try makes of a delivery: delivered on a 2xx, else retried or given up by
 * `retryAfterFailure`. `attempts` counts the tries before this one.
 */
export function settle(
  d: { id: string; attempts: number; createdAt: number; nextAt: number },
  outcome: { ok: boolean; status: number | null; error: string | null },
  ctx: { now: number; random: number },
  policy: BackoffPolicy,
): Settled {
  const base = { id: d.id, lastStatus: outcome.status, lastError: outcome.error };
  if (outcome.ok) return { ...base, status: "delivered", nextAt: d.nextAt, finishedAt: ctx.now };
  const retry = retryAfterFailure({ attempts: d.attempts + 1, createdAt: d.createdAt, now: ctx.now, random: ctx.random }, policy);
  return retry.status === "pending" ? { ...base, status: "pending", nextAt: retry.nextAt, finishedAt: null } : { ...base, status: "failed", nextAt: d.nextAt, finishedAt: ctx.now };
}
