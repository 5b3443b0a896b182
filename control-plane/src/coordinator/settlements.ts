/**
 * How a failed group write of agent reports is retried (pure): exponential backoff from
 * `baseMs` up to `maxMs`; after `isolateAfter` failures an event is written alone, so one that
 * can never be written does not hold the others back; after `giveUpAfter` it is dropped (its
 * waiter is told, and the agent re-sends an unacknowledged result on its own timer).
 */
export interface SettleRetry {
  baseMs: number;
  maxMs: number;
  isolateAfter: number;
  giveUpAfter: number;
}
export const SETTLE_RETRY: Readonly<SettleRetry> = { baseMs: 100, maxMs: 5000, isolateAfter: 3, giveUpAfter: 60 };

export function settleRetryDelay(failures: number, policy: SettleRetry = SETTLE_RETRY): number {
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, failures - 1));
}

interface Waiting<E, R> {
  event: E;
  failures: number;
  done: (r: R) => void;
  fail: (err: unknown) => void;
}

export interface SettlementQueueOptions<E, R> {
  /** Writes a batch; resolves with one verdict per event, in order. */
  apply(events: E[]): Promise<R[]>;
  /** Runs the write alone among the coordinator's state changes. */
  exclusive(fn: () => Promise<void>): Promise<void>;
  /** Events written in one group write, at most. */
  batch: number;
  policy?: SettleRetry;
  /** A write failed and will be tried again after `delayMs`. */
  onRetry(err: unknown, events: number, delayMs: number): void;
}

/**
 * Agent starts and results waiting to be written. Events that arrive while a write is in
 * flight are written together in the next one (group commit), so a pool's throughput does not
 * pay two D1 round trips per event. A failed write is retried by the queue itself with backoff
 * (a transient D1 failure delays a result, never loses it); each event's promise settles once
 * its write commits.
 */
export class SettlementQueue<E, R> {
  private readonly waiting: Waiting<E, R>[] = [];
  private flushQueued = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly opts: SettlementQueueOptions<E, R>) {}

  push(event: E): Promise<R> {
    return new Promise((done, fail) => {
      this.waiting.push({ event, failures: 0, done, fail });
      if (!this.retryTimer) this.flush();
    });
  }

  private flush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    void this.opts.exclusive(async () => {
      this.flushQueued = false;
      // A write failed while this flush waited: the retry timer flushes, after its backoff.
      if (this.retryTimer) return;
      const policy = this.opts.policy ?? SETTLE_RETRY;
      const head = this.waiting[0];
      if (!head) return;
      // An event that failed repeatedly goes alone, so it cannot hold the rest back.
      const taken = head.failures >= policy.isolateAfter ? this.waiting.splice(0, 1) : this.waiting.splice(0, this.takeable(policy));
      try {
        const verdicts = await this.opts.apply(taken.map((t) => t.event));
        taken.forEach((t, i) => t.done(verdicts[i]!));
      } catch (err) {
        this.retry(taken, err, policy);
        return;
      }
      if (this.waiting.length) this.flush();
    });
  }

  /** Fresh events up to the batch size, stopping before one that must go alone. */
  private takeable(policy: SettleRetry): number {
    let n = 0;
    while (n < this.waiting.length && n < this.opts.batch && this.waiting[n]!.failures < policy.isolateAfter) n++;
    return Math.max(1, n);
  }

  private retry(taken: Waiting<E, R>[], err: unknown, policy: SettleRetry): void {
    const kept = taken.filter((t) => {
      t.failures++;
      if (t.failures < policy.giveUpAfter) return true;
      t.fail(err);
      return false;
    });
    this.waiting.unshift(...kept);
    if (this.waiting.length === 0) return;
    const delayMs = settleRetryDelay(Math.min(...this.waiting.map((w) => w.failures).filter((f) => f > 0), policy.giveUpAfter), policy);
    this.opts.onRetry(err, kept.length, delayMs);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.flush();
    }, delayMs);
  }
}
