/**
 * A session's byte budget: it refills at `perSecond` and holds at most one second's worth. A
 * take always succeeds and says how long to wait before acting on it, so a session over its
 * rate is slowed (its credit comes later), never refused. Pure; the clock is the caller's.
 */
export class ByteBucket {
  private tokens: number;

  constructor(
    private readonly perSecond: number,
    private at: number,
  ) {
    this.tokens = perSecond;
  }

  /** Spends `bytes` as of `now` (ms); returns the ms to wait first (0 while the budget lasts). */
  take(bytes: number, now: number): number {
    // A clock that steps back refills nothing.
    this.tokens = Math.min(this.perSecond, this.tokens + (Math.max(0, now - this.at) / 1000) * this.perSecond);
    this.at = Math.max(this.at, now);
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.perSecond) * 1000;
  }
}
