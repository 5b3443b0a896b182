import { LOG_LIMITS, MAX_LOG_BATCH_LINES, type LogLine, type LogStream } from "../../../protocol/index.ts";

/** Bounds on what a job's log may cost the agent, the line and the control plane. */
export interface LogLimits {
  /** A longer line is sent as consecutive pieces of at most this many bytes. */
  lineBytes: number;
  /** A job's log cap when its assignment carries none (LOG_MAX_BYTES): past it lines are counted, not kept. */
  jobBytes: number;
  /** One batch carries at most this many bytes of text (a line counts its newline) and lines. */
  batchBytes: number;
  batchLines: number;
  /** Past this much waiting to be sent (see `lineCost`), the job's output is no longer read (its writes block)... */
  highWaterBytes: number;
  /** ...until it is back down to this. */
  lowWaterBytes: number;
}

export const DEFAULT_LOG_LIMITS: LogLimits = {
  lineBytes: 64 * 1024,
  jobBytes: 100 * 1024 * 1024,
  batchBytes: 64 * 1024,
  batchLines: MAX_LOG_BATCH_LINES,
  highWaterBytes: 4 * 1024 * 1024,
  lowWaterBytes: 1024 * 1024,
};

/** What a queued line costs beyond its text: its object here, its JSON on the wire (about the same). */
const LINE_OVERHEAD_BYTES = 64;
/** What a line costs while it waits, so a flood of empty lines is bounded too. */
const lineCost = (line: LogLine) => line.text.length + LINE_OVERHEAD_BYTES;

/**
 * Cuts one stream's bytes into pieces of at most `maxBytes`: each line, or, for a longer line,
 * consecutive pieces of it (never splitting a UTF-8 character) whose concatenation is the line.
 * A piece of a long line leaves as soon as it is full, so a line never waits for its end.
 * `endsLine` says a piece was followed by a newline; pieces keep a trailing `\r`.
 */
export class PieceSplitter {
  private pending: Buffer = Buffer.alloc(0);

  constructor(
    private readonly maxBytes: number,
    private readonly emit: (piece: Buffer, endsLine: boolean) => void,
  ) {}

  write(chunk: Buffer): void {
    let data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a)) {
      this.emitLine(data.subarray(0, nl), true);
      data = data.subarray(nl + 1);
    }
    while (data.length > this.maxBytes) data = this.emitPiece(data);
    this.pending = Buffer.from(data);
  }

  /** Emits what is left as a last, unterminated line. */
  end(): void {
    if (this.pending.length) this.emitLine(this.pending, false);
    this.pending = Buffer.alloc(0);
  }

  private emitLine(line: Buffer, endsLine: boolean): void {
    while (line.length > this.maxBytes) line = this.emitPiece(line);
    this.emit(line, endsLine);
  }

  /** Emits the first piece of `data` (longer than a piece) and returns the rest. */
  private emitPiece(data: Buffer): Buffer {
    const end = utf8Boundary(data, this.maxBytes);
    this.emit(data.subarray(0, end), false);
    return data.subarray(end);
  }
}

/** The largest cut at or before `max` that does not split a UTF-8 character (`max` itself if none). */
function utf8Boundary(buf: Buffer, max: number): number {
  let end = max;
  while (end > max - 4 && end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return end > 0 && (buf[end]! & 0xc0) !== 0x80 ? end : max;
}

/** One stream's lines as text: pieces of at most `maxBytes`, a line's `\r\n` read as its end. */
export class LineSplitter {
  private readonly pieces: PieceSplitter;

  constructor(
    private readonly stream: OutputStream,
    maxBytes: number,
    /** `bytes`: what the piece was in the output, its newline included (what the log cap counts). */
    emit: (stream: OutputStream, text: string, bytes: number) => void,
  ) {
    this.pieces = new PieceSplitter(maxBytes, (piece, endsLine) => {
      const body = endsLine && piece.at(-1) === 0x0d ? piece.subarray(0, -1) : piece;
      emit(this.stream, body.toString("utf8"), piece.length + 1);
    });
  }

  write(chunk: Buffer): void {
    this.pieces.write(chunk);
  }

  end(): void {
    this.pieces.end();
  }
}

/**
 * A job's log cap: lines are kept while they fit, and from the first that does not, every
 * line is counted instead (the log has no holes, only an end). The live log and the archived
 * `.gridx/job.log` count the same way and end with the same `marker()`.
 */
export class LogCap {
  private used = 0;
  private droppedLines = 0;
  private droppedBytes = 0;

  constructor(readonly maxBytes: number) {}

  /** Whether a line of `bytes` (its newline included) is kept. */
  admit(bytes: number): boolean {
    if (this.droppedLines === 0 && this.used + bytes <= this.maxBytes) {
      this.used += bytes;
      return true;
    }
    this.droppedLines++;
    this.droppedBytes += bytes;
    return false;
  }

  get reached(): boolean {
    return this.droppedLines > 0;
  }

  /** The last line of a log past its cap, or null when nothing was dropped. */
  marker(): string | null {
    return this.reached ? capMarker(this.droppedLines, this.droppedBytes) : null;
  }
}

/** `[gridx: 12,345 lines / 3.4 MiB dropped: log cap LOG_MAX_BYTES]` */
export const capMarker = (lines: number, bytes: number) => `[gridx: ${lines.toLocaleString("en-US")} lines / ${formatBytes(bytes)} dropped: log cap LOG_MAX_BYTES]`;

/** Bytes in binary units with one decimal: 512 B, 1.5 KiB, 3.4 MiB, 2.0 GiB. */
export function formatBytes(bytes: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB"];
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** What the container printed, by stream; `system` lines are the agent's own. */
export type OutputStream = Exclude<LogStream, "system">;

/**
 * One job's log on its way out: its streams cut into lines, its cap applied, and the lines
 * waiting for the socket in order. `onLines` hears that lines are waiting; the sender takes
 * them a batch at a time. While more than the high-water mark waits, `congested()` says so
 * (and keeps saying so until the low-water mark), and the runner stops reading the output.
 */
export class JobLog {
  private readonly queue: LogLine[] = [];
  private head = 0;
  private queuedCost = 0;
  private paused = false;
  private ended = false;
  private readonly cap: LogCap;
  private readonly splitters: Record<OutputStream, LineSplitter>;

  constructor(
    private readonly limits: LogLimits,
    capBytes: number,
    private readonly onLines: () => void,
    private readonly now: () => number = Date.now,
  ) {
    this.cap = new LogCap(capBytes);
    const splitter = (stream: OutputStream) => new LineSplitter(stream, limits.lineBytes, (s, text, bytes) => this.add(s, text, bytes));
    this.splitters = { stdout: splitter("stdout"), stderr: splitter("stderr"), build: splitter("build") };
  }

  write(stream: OutputStream, chunk: Buffer): void {
    this.splitters[stream].write(chunk);
  }

  /** A line from the agent itself (lifecycle, failures), outside the job's cap. */
  system(text: string): void {
    this.push({ stream: "system", text: text.slice(0, LOG_LIMITS.line_chars), ts: this.now() });
  }

  /** The output is over: what the streams held back, `lastWords`, and the cap's marker, in that order, last. */
  end(lastWords: string | null = null): void {
    if (this.ended) return;
    this.ended = true;
    for (const s of Object.values(this.splitters)) s.end();
    if (lastWords) this.system(lastWords);
    const marker = this.cap.marker();
    if (marker) this.system(marker);
  }

  get done(): boolean {
    return this.ended && this.waiting === 0;
  }

  get waiting(): number {
    return this.queue.length - this.head;
  }

  congested(): boolean {
    if (this.queuedCost >= this.limits.highWaterBytes) this.paused = true;
    else if (this.queuedCost <= this.limits.lowWaterBytes) this.paused = false;
    return this.paused;
  }

  /** The next batch: the oldest lines, within the batch bounds (at least one line), or null. */
  take(): LogLine[] | null {
    if (this.waiting === 0) return null;
    const maxLines = Math.min(this.limits.batchLines, MAX_LOG_BATCH_LINES);
    const batch: LogLine[] = [];
    let bytes = 0;
    while (this.head < this.queue.length && batch.length < maxLines) {
      const line = this.queue[this.head]!;
      if (batch.length && bytes + line.text.length + 1 > Math.min(this.limits.batchBytes, LOG_LIMITS.batch_chars)) break;
      batch.push(line);
      bytes += line.text.length + 1;
      this.queuedCost -= lineCost(line);
      this.head++;
    }
    // Taken lines are let go in steps, not one shift at a time.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return batch;
  }

  private add(stream: OutputStream, text: string, bytes: number): void {
    const first = !this.cap.reached;
    if (this.cap.admit(bytes)) this.push({ stream, text, ts: this.now() });
    else if (first) this.system(`[gridx: log cap LOG_MAX_BYTES (${formatBytes(this.cap.maxBytes)}) reached: further lines are counted, not kept]`);
  }

  private push(line: LogLine): void {
    this.queue.push(line);
    this.queuedCost += lineCost(line);
    this.onLines();
  }
}
