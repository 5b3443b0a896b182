/** A token bucket's rule: it refills at `perSecond` and holds at most `burst` requests. */
export interface Rule {
  perSecond: number;
  burst: number;
}

/** A bucket's tokens as of `at` (ms since the epoch). */
export interface Bucket {
  tokens: number;
  at: number;
}

export interface Verdict {
  /** Whether this request may go through. */
  allowed: boolean;
  bucket: Bucket;
  /** How long until the next request would go through: 0 while a token is left. */
  retryAfterMs: number;
}

/**
 * Refills a bucket to `now` and, if a token is there, takes it (unless `consume` is false: a
 * look without spending). A missing bucket starts full. A clock that steps back refills nothing.
 */
export function take(bucket: Bucket | undefined, rule: Rule, now: number, consume = true): Verdict {
  const elapsedS = bucket ? Math.max(0, now - bucket.at) / 1000 : 0;
  let tokens = bucket ? Math.min(rule.burst, bucket.tokens + elapsedS * rule.perSecond) : rule.burst;
  const allowed = tokens >= 1;
  if (allowed && consume) tokens -= 1;
  return { allowed, bucket: { tokens, at: now }, retryAfterMs: tokens >= 1 ? 0 : ((1 - tokens) / rule.perSecond) * 1000 };
}

/** `Retry-After` is whole seconds; never 0, which a client could read as "at once". */
export const retryAfterSeconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));
