/** Reconnect timing: exponential growth capped at `maxMs`, with full jitter. */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000 };

/**
 * The delay before reconnect number `attempt` (0-based): a uniform draw from
 * [0, min(max, base·2^attempt)], so a fleet that lost the control plane together does not
 * come back together (AWS Architecture Blog, "Exponential Backoff And Jitter").
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
