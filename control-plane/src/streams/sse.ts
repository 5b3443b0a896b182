/** One server-sent event. `data` is one line of JSON in every stream gridx serves. */
export interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

const encoder = new TextEncoder();

export const encodeEvent = (e: SseEvent) => encoder.encode(`event: ${e.event}\n${e.id !== undefined ? `id: ${e.id}\n` : ""}data: ${e.data}\n\n`);

/**
 * The writing end of one follower's event stream. Writes never wait for the reader: a slow
 * reader's unread bytes are counted, and past `maxQueuedBytes` the stream is closed. Nothing is
 * lost by that: the reader resumes from the last id it got (Last-Event-ID).
 */
export class SseWriter {
  readonly readable: ReadableStream<Uint8Array>;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private queued = 0;
  private done = false;

  constructor(private readonly maxQueuedBytes: number) {
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    this.readable = readable;
    this.writer = writable.getWriter();
    this.writer.closed.then(
      () => (this.done = true),
      () => (this.done = true),
    );
  }

  get closed(): boolean {
    return this.done;
  }

  send(e: SseEvent): void {
    this.write(encodeEvent(e));
  }

  /** Several events as one chunk: a batch of lines costs one write down the stream, not one each. */
  sendAll(events: readonly SseEvent[]): void {
    if (events.length === 0) return;
    if (events.length === 1) return this.send(events[0]!);
    const parts = events.map(encodeEvent);
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    this.write(out);
  }

  comment(text: string): void {
    this.write(encoder.encode(`: ${text}\n\n`));
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.writer.close().catch(() => undefined);
  }

  private write(bytes: Uint8Array): void {
    if (this.done) return;
    if (this.queued + bytes.length > this.maxQueuedBytes) {
      // Closing rather than dropping keeps the stream exact: the reader reconnects after its last id.
      this.done = true;
      this.writer.abort(new Error("the reader fell too far behind")).catch(() => undefined);
      return;
    }
    this.queued += bytes.length;
    this.writer.write(bytes).then(
      () => (this.queued -= bytes.length),
      () => (this.done = true),
    );
  }
}

export const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" };

/** What a follower may leave unread before its stream is closed (it resumes by cursor). */
export const FOLLOWER_MAX_QUEUED_BYTES = 8 * 1024 * 1024;
