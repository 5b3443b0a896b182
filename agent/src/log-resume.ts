import type { LogLine } from "../../protocol/index.ts";
import { formatBytes } from "./runner/log-collector.ts";

/**
 * What the agent keeps of one attempt's log after handing it to the socket, so the batches a
 * dropped connection lost can be sent again (the coordinator stores a re-sent batch once). The
 * newest batches up to this much text are kept; older ones are only counted.
 */
export const RESEND_RING_BYTES = 4 * 1024 * 1024;

/** Evicted batches counted one by one, at most; older ones are folded together (see SentLog). */
export const EVICTED_KEPT = 1024;

export interface SentBatch {
  seq: number;
  lines: LogLine[];
  /** Its text, each line's newline included (as batches are bounded). */
  bytes: number;
}

/** Batches no longer kept: their last seq, and how many lines and bytes they held. */
export interface Evicted {
  seq: number;
  lines: number;
  bytes: number;
}

export const batchBytes = (lines: readonly LogLine[]) => lines.reduce((n, l) => n + l.text.length + 1, 0);

/** `[gridx: 1,234 lines / 3.4 MiB lost in a reconnect]` (numbers as the log cap's marker). */
export const lostMarker = (lines: number, bytes: number) => `[gridx: ${lines.toLocaleString("en-US")} lines / ${formatBytes(bytes)} lost in a reconnect]`;

/** What to send after the coordinator says it stored batches through `afterSeq`. */
export interface ResumePlan {
  /** Lines the agent no longer has and the coordinator never stored; null when none. */
  lost: { lines: number; bytes: number } | null;
  resend: SentBatch[];
}

/**
 * Decides a resume (pure): every kept batch after `afterSeq`, in order, and the count of the
 * evicted ones after it, which can no longer be sent and are reported instead of vanishing.
 */
export function resumePlan(kept: readonly SentBatch[], evicted: readonly Evicted[], afterSeq: number): ResumePlan {
  let lines = 0;
  let bytes = 0;
  for (const e of evicted) {
    if (e.seq <= afterSeq) continue;
    lines += e.lines;
    bytes += e.bytes;
  }
  return { lost: lines > 0 ? { lines, bytes } : null, resend: kept.filter((b) => b.seq > afterSeq) };
}

/**
 * One attempt's sent batches: the newest `maxBytes` kept whole, the older ones counted. Past
 * `EVICTED_KEPT` counted batches the two oldest counts merge, so memory stays bounded; a resume
 * falling inside a merged count reports the whole of it (more lost than was, never less).
 */
export class SentLog {
  private kept: SentBatch[] = [];
  private head = 0;
  private keptBytes = 0;
  private evicted: Evicted[] = [];

  constructor(private readonly maxBytes = RESEND_RING_BYTES) {}

  add(seq: number, lines: LogLine[]): void {
    const bytes = batchBytes(lines);
    this.kept.push({ seq, lines, bytes });
    this.keptBytes += bytes;
    while (this.keptBytes > this.maxBytes && this.kept.length - this.head > 1) {
      const old = this.kept[this.head++]!;
      this.keptBytes -= old.bytes;
      this.evicted.push({ seq: old.seq, lines: old.lines.length, bytes: old.bytes });
      if (this.evicted.length > EVICTED_KEPT) {
        const [a, b] = this.evicted.splice(0, 2) as [Evicted, Evicted];
        this.evicted.unshift({ seq: b.seq, lines: a.lines + b.lines, bytes: a.bytes + b.bytes });
      }
    }
    if (this.head > 1024 && this.head * 2 > this.kept.length) {
      this.kept.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Nothing was handed to the socket yet, so a dropped connection lost none of it. */
  get empty(): boolean {
    return this.kept.length === this.head;
  }

  /** What to send now that the coordinator has every batch through `afterSeq`; counts at or before it are let go. */
  resume(afterSeq: number): ResumePlan {
    const plan = resumePlan(this.kept.slice(this.head), this.evicted, afterSeq);
    this.evicted = this.evicted.filter((e) => e.seq > afterSeq);
    return plan;
  }
}
