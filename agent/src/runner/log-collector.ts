import { MAX_LOG_BATCH_LINES, type LogLine, type LogStream } from "../../../protocol/index.ts";

/** Bounds on what a job's output may cost; past them output is cut with a visible marker. */
export interface LogLimits {
  /** A longer line is cut here and marked. */
  lineBytes: number;
  /** Past this much output in one job, further lines are dropped after one marker line. */
  jobBytes: number;
  /** A batch is sent once it holds this many bytes or lines... */
  batchBytes: number;
  batchLines: number;
  /** ...or this long after its first line. */
  flushMs: number;
}

export const DEFAULT_LOG_LIMITS: LogLimits = { lineBytes: 64 * 1024, jobBytes: 100 * 1024 * 1024, batchBytes: 64 * 1024, batchLines: MAX_LOG_BATCH_LINES, flushMs: 200 };

export const LINE_CUT_MARKER = " [gridx: line cut]";

/**
 * Splits one stream's bytes into lines. A line longer than the limit is emitted cut, with a
 * marker, and the rest of it up to the next newline is skipped.
 */
export class LineSplitter {
  private pending: Buffer = Buffer.alloc(0);
  private skipping = false;

  constructor(
    private readonly stream: LogStream,
    private readonly maxBytes: number,
    private readonly emit: (stream: LogStream, text: string) => void,
  ) {}

  write(chunk: Buffer): void {
    let data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      const nl = data.indexOf(0x0a);
      if (nl === -1) break;
      const line = data.subarray(0, nl);
      data = data.subarray(nl + 1);
      if (this.skipping) this.skipping = false;
      else this.emitLine(line);
    }
    if (this.skipping) data = Buffer.alloc(0);
    else if (data.length > this.maxBytes) {
      this.emit(this.stream, cutUtf8(data, this.maxBytes) + LINE_CUT_MARKER);
      this.skipping = true;
      data = Buffer.alloc(0);
    }
    this.pending = Buffer.from(data);
  }

  /** Emits what is left as a last, unterminated line. */
  end(): void {
    if (this.pending.length && !this.skipping) this.emitLine(this.pending);
    this.pending = Buffer.alloc(0);
    this.skipping = false;
  }

  private emitLine(line: Buffer): void {
    const body = line.at(-1) === 0x0d ? line.subarray(0, -1) : line;
    if (body.length > this.maxBytes) this.emit(this.stream, cutUtf8(body, this.maxBytes) + LINE_CUT_MARKER);
    else this.emit(this.stream, body.toString("utf8"));
  }
}

/** Decodes at most `max` bytes without splitting a UTF-8 character. */
function cutUtf8(buf: Buffer, max: number): string {
  let end = Math.min(max, buf.length);
  while (end > 0 && end < buf.length && (buf[end]! & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString("utf8");
}

/**
 * Gathers lines into sequenced batches by size and time, and enforces the job's output cap.
 * `onBatch` receives each batch once; the sender keeps order and retries.
 */
export class LogBatcher {
  private lines: LogLine[] = [];
  private bytes = 0;
  private total = 0;
  private capped = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly limits: LogLimits,
    private readonly onBatch: (lines: LogLine[]) => void,
    private readonly now: () => number = Date.now,
  ) {}

  add(stream: LogStream, text: string): void {
    if (this.capped) return;
    const size = Buffer.byteLength(text) + 1;
    if (this.total + size > this.limits.jobBytes) {
      this.capped = true;
      this.push({ stream: "system", text: `[gridx: output exceeded ${this.limits.jobBytes} bytes; further output is dropped]`, ts: this.now() }, 0);
      this.flush();
      return;
    }
    this.total += size;
    this.push({ stream, text, ts: this.now() }, size);
  }

  /** A line from the agent itself (image build, lifecycle), outside the job's output cap. */
  system(text: string): void {
    this.push({ stream: "system", text, ts: this.now() }, Buffer.byteLength(text) + 1);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.lines.length === 0) return;
    const batch = this.lines;
    this.lines = [];
    this.bytes = 0;
    this.onBatch(batch);
  }

  private push(line: LogLine, size: number): void {
    this.lines.push(line);
    this.bytes += size;
    if (this.bytes >= this.limits.batchBytes || this.lines.length >= Math.min(this.limits.batchLines, MAX_LOG_BATCH_LINES)) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.limits.flushMs);
  }
}
