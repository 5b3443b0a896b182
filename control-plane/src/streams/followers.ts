import { errorText } from "../errors.ts";
import type { Settings } from "../settings.ts";
import { FOLLOWER_MAX_QUEUED_BYTES, SseWriter } from "./sse.ts";

/** One reader of a follow stream. */
export interface Follower {
  readonly out: SseWriter;
  readonly startedAt: number;
  lastWriteAt: number;
  /** Still reading storage: what is pushed meanwhile waits for it. */
  catchingUp: boolean;
  /** Where a reader that reconnects goes on from (the `resume` event's `after`). */
  resumeAfter(): string | null;
}

export const newWriter = () => new SseWriter(FOLLOWER_MAX_QUEUED_BYTES);

/**
 * The followers of one stream, and the timer that keeps them honest: a keep-alive comment when
 * a stream is quiet, `resume` and close at the maximum duration, and a backstop callback (one
 * storage read for all followers) for changes whose push was lost. The timer runs only while
 * there are followers.
 */
export class FollowerSet<F extends Follower> {
  readonly all = new Set<F>();
  private ticker: ReturnType<typeof setInterval> | null = null;
  private lastBackstopAt = Date.now();

  constructor(
    private readonly settings: Pick<Settings, "FOLLOW_MAX_S" | "FOLLOW_KEEPALIVE_S" | "FOLLOW_BACKSTOP_S">,
    private readonly backstop: () => Promise<void>,
    private readonly name: () => string,
  ) {}

  get size(): number {
    return this.all.size;
  }

  add(f: F): void {
    this.all.add(f);
    this.ticker ??= setInterval(() => void this.tick(), 1000);
  }

  drop(f: F): void {
    f.out.close();
    this.all.delete(f);
    if (this.all.size === 0 && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
  }

  /** Drops a follower whose stream closed under it (the reader left, or fell too far behind). */
  sweepClosed(f: F): boolean {
    if (!f.out.closed) return false;
    this.drop(f);
    return true;
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    for (const f of [...this.all]) {
      if (this.sweepClosed(f) || f.catchingUp) continue;
      if (now - f.startedAt >= this.settings.FOLLOW_MAX_S * 1000) {
        f.out.send({ event: "resume", data: JSON.stringify({ after: f.resumeAfter() }) });
        this.drop(f);
      } else if (now - f.lastWriteAt >= this.settings.FOLLOW_KEEPALIVE_S * 1000) {
        f.out.comment("keep-alive");
        f.lastWriteAt = now;
      }
    }
    if (this.all.size && now - this.lastBackstopAt >= this.settings.FOLLOW_BACKSTOP_S * 1000) {
      this.lastBackstopAt = now;
      await this.backstop().catch((err) => console.error(`${this.name()}: backstop read failed`, errorText(err)));
    }
  }
}
