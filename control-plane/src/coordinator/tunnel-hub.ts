import { z } from "zod";
import {
  decodeTunnelFrame,
  encodeTunnelFrame,
  ExecChannel,
  ExecControl,
  FrameType,
  jsonFrame,
  messageFrame,
  readJson,
  readMessage,
  readWindow,
  ReceiveWindow,
  SendWindow,
  TUNNEL_LIMITS,
  TunnelEnd,
  TunnelHead,
  TunnelReset,
  TunnelTarget,
  windowFrame,
  type ErrorCode,
  type ResetCode,
  type TunnelFrame,
} from "../../../protocol/index.ts";
import { errorText } from "../errors.ts";
import type { Settings } from "../settings.ts";
import { ByteBucket } from "./byte-bucket.ts";

/** The header the API worker's port and exec routes put their already-checked request in. */
export const TUNNEL_HEADER = "x-gridx-tunnel";

/** What the API worker asks the coordinator to open: a stream to `target`, for an attempt `worker_id` holds. */
export const TunnelRequest = z.object({
  job_id: z.string().min(1).max(64),
  attempt: z.number().int().min(1),
  worker_id: z.string().min(1).max(64),
  target: TunnelTarget,
  /** A WebSocket (or exec) with no traffic this long is closed. */
  idle_timeout_s: z.number().int().positive(),
  /** What shares one byte budget within the job: `port:<n>` or `exec`. */
  session: z.string().min(1).max(64),
});
export type TunnelRequest = z.infer<typeof TunnelRequest>;

/** The hub's bounds, from the settings. */
export const tunnelBounds = (s: Settings) => ({
  streamsPerJob: s.TUNNEL_STREAMS_PER_JOB,
  streamsPerAgent: s.TUNNEL_STREAMS_PER_AGENT,
  sessionBytesPerS: s.TUNNEL_SESSION_BYTES_PER_S,
  requestBytes: s.TUNNEL_REQUEST_BYTES,
  wsMessageBytes: s.TUNNEL_WS_MESSAGE_BYTES,
  openTimeoutMs: s.TUNNEL_OPEN_TIMEOUT_S * 1000,
});
export type TunnelBounds = ReturnType<typeof tunnelBounds>;

/** A JSON error as the API answers them, with the status the tunnel chose. */
export function tunnelError(status: number, code: ErrorCode, message: string, details: Record<string, unknown> = {}): Response {
  return Response.json({ error: { code, message, ...details } }, { status });
}

/** What the client is told when a stream is cut before its head: the status for each reset code. */
const RESET_STATUS: Record<ResetCode, { status: number; code: ErrorCode }> = {
  unreachable: { status: 502, code: "unavailable" },
  refused: { status: 403, code: "forbidden" },
  limit: { status: 429, code: "too_many_requests" },
  gone: { status: 502, code: "unavailable" },
  error: { status: 502, code: "unavailable" },
};

/** A cut stream: why, and the status a client still waiting for its head gets (the reset code's unless set). */
type Cut = TunnelReset & { status?: number; errorCode?: ErrorCode };

// Statuses a Response carries no body with.
const NULL_BODY = new Set([101, 204, 205, 304]);
// Close codes a peer may not send (reserved for the runtime).
const UNSENDABLE_CLOSE = new Set([1004, 1005, 1006, 1015]);
// Headers that describe the relay's connection, not the response.
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "content-length", "proxy-connection", "te", "trailer"]);

const text = new TextEncoder();
const untext = new TextDecoder();

/** One stream on an agent socket. */
class Stream {
  readonly send = new SendWindow();
  readonly recv = new ReceiveWindow();
  open = true;
  /** Set until the head (or a cut) comes. */
  resolveHead: ((outcome: TunnelHead | Cut) => void) | null = null;
  readonly head: Promise<TunnelHead | Cut>;
  /** The agent's data, message and end frames after the head, until the relay listens (the head's awaiter runs a tick later). */
  private early: TunnelFrame[] | null = [];
  private handler: (frame: TunnelFrame) => void = (frame) => this.early?.push(frame);
  /** Why it was cut after its head, and how the relay tells its client. */
  private cutWith: Cut | null = null;
  private cutHandler: (cut: Cut) => void = () => undefined;
  timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly req: TunnelRequest,
  ) {
    this.head = new Promise((resolve) => (this.resolveHead = resolve));
  }

  deliver(frame: TunnelFrame): void {
    this.handler(frame);
  }

  /** The relay tells its client of a cut with `handler`, at once if the cut came before the relay did. */
  whenCut(handler: (cut: Cut) => void): void {
    if (this.cutWith) handler(this.cutWith);
    else this.cutHandler = handler;
  }

  cutAfterHead(cut: Cut): void {
    this.cutWith = cut;
    this.cutHandler(cut);
  }

  /** The relay takes the agent's frames from now on, first those that came before it listened. */
  listen(handler: (frame: TunnelFrame) => void): void {
    this.handler = handler;
    const early = this.early ?? [];
    this.early = null;
    for (const frame of early) if (this.open) handler(frame);
  }
}

const isCut = (o: TunnelHead | Cut): o is Cut => "code" in o;

/**
 * The tunnel's streams on this coordinator's agent sockets (protocol/tunnel.ts): their ids,
 * credit, caps and byte budgets, and the HTTP, WebSocket and exec relays between a client's
 * request and an agent's frames. Nothing here is durable: a stream lives as long as the
 * request that opened it, which keeps the object awake. No method throws to its caller's
 * socket handler.
 */
export class TunnelHub {
  private readonly sockets = new Map<WebSocket, { next: number; streams: Map<number, Stream> }>();
  private readonly byJob = new Map<string, Set<Stream>>();
  private readonly buckets = new Map<string, { bucket: ByteBucket; streams: number }>();
  /** Bytes every client has queued for its agent (InboundQueue). */
  private readonly inbound = { queued: 0 };

  constructor(
    private readonly bounds: TunnelBounds,
    private readonly log: (message: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Opens a stream on `ws` (the socket of the worker holding the attempt, checked by the caller) and relays `request` over it. */
  async open(ws: WebSocket, req: TunnelRequest, request: Request): Promise<Response> {
    const socket = this.sockets.get(ws) ?? { next: 1, streams: new Map<number, Stream>() };
    const job = this.byJob.get(req.job_id) ?? new Set<Stream>();
    if (job.size >= this.bounds.streamsPerJob) {
      return tunnelError(429, "too_many_requests", `job ${req.job_id} has ${job.size} tunnel streams open, the most TUNNEL_STREAMS_PER_JOB allows`, { limit: this.bounds.streamsPerJob });
    }
    if (socket.streams.size >= this.bounds.streamsPerAgent) {
      return tunnelError(429, "too_many_requests", `the worker has ${socket.streams.size} tunnel streams open, the most TUNNEL_STREAMS_PER_AGENT allows`, { limit: this.bounds.streamsPerAgent });
    }
    const s = new Stream(socket.next++, ws, req);
    socket.streams.set(s.id, s);
    job.add(s);
    this.sockets.set(ws, socket);
    this.byJob.set(req.job_id, job);
    const key = this.sessionKey(s);
    const budget = this.buckets.get(key) ?? { bucket: new ByteBucket(this.bounds.sessionBytesPerS, this.now()), streams: 0 };
    budget.streams++;
    this.buckets.set(key, budget);
    s.timer = setTimeout(() => this.reset(s, "error", `the agent did not answer within ${this.bounds.openTimeoutMs / 1000} s`, 504), this.bounds.openTimeoutMs);
    if (!this.sendFrame(s, jsonFrame(FrameType.open, s.id, { job_id: req.job_id, attempt: req.attempt, target: req.target }))) {
      this.cut(s, { code: "gone", message: "the worker's connection ended" });
    }
    try {
      switch (req.target.type) {
        case "http":
          return await this.http(s, request);
        case "ws":
          return await this.webSocket(s);
        case "exec":
          return await this.exec(s);
      }
    } catch (err) {
      this.reset(s, "error", "the coordinator could not relay this stream");
      this.log(`tunnel stream ${s.id} of ${req.job_id} failed: ${errorText(err)}`);
      return tunnelError(502, "internal", "the coordinator could not relay this stream");
    }
  }

  /**
   * A binary frame from an agent socket; false when it is not a tunnel frame at all. Frames of
   * streams not open on that socket (ended ones, or another socket's) are ignored.
   */
  frame(ws: WebSocket, raw: ArrayBuffer): boolean {
    const frame = decodeTunnelFrame(raw);
    if (!frame) return false;
    try {
      const s = this.sockets.get(ws)?.streams.get(frame.stream);
      if (s) this.onFrame(s, frame);
    } catch (err) {
      this.log(`a tunnel frame could not be handled: ${errorText(err)}`);
    }
    return true;
  }

  private onFrame(s: Stream, frame: TunnelFrame): void {
    switch (frame.type) {
      case FrameType.window: {
        const bytes = readWindow(frame.payload);
        if (bytes !== null) s.send.grant(bytes);
        return;
      }
      case FrameType.head: {
        const head = readJson(frame.payload, TunnelHead);
        if (!head || !s.resolveHead) return this.reset(s, "error", "a head the coordinator could not read, or a second one");
        if (s.timer) clearTimeout(s.timer);
        s.timer = null;
        const resolve = s.resolveHead;
        s.resolveHead = null;
        return resolve(head);
      }
      case FrameType.data:
      case FrameType.stderr:
      case FrameType.message:
        if (s.resolveHead) return this.reset(s, "error", "data before the head");
        if (!s.recv.received(frame.payload.byteLength)) return this.reset(s, "limit", "the agent sent past its credit");
        return s.deliver(frame);
      case FrameType.end:
        if (s.resolveHead) return this.reset(s, "error", "an end before the head");
        return s.deliver(frame);
      case FrameType.reset:
        return this.cut(s, readJson(frame.payload, TunnelReset) ?? { code: "error", message: "the agent reset the stream" });
      default:
        // open and resize are the coordinator's to send: a broken agent.
        return this.reset(s, "error", `frame type ${frame.type} is not an agent's`);
    }
  }

  /** An agent socket went away: every stream on it is cut. */
  socketClosed(ws: WebSocket): void {
    for (const s of [...(this.sockets.get(ws)?.streams.values() ?? [])]) this.cut(s, { code: "gone", message: "the worker's connection ended" });
    this.sockets.delete(ws);
  }

  /** An attempt ended (result, cancel, loss): its streams are cut, and the agent told. */
  attemptEnded(jobId: string, attempt: number): void {
    for (const s of [...(this.byJob.get(jobId) ?? [])]) if (s.req.attempt === attempt) this.reset(s, "gone", "the job ended");
  }

  // ---- relays -------------------------------------------------------------------------------

  private async http(s: Stream, request: Request): Promise<Response> {
    if (s.req.target.type === "http" && s.req.target.body && request.body) void this.pumpBody(s, request.body);
    const head = await s.head;
    if (isCut(head)) return this.refusal(head);
    if (head.status < 200 || head.status > 599) {
      this.reset(s, "error", `status ${head.status} is not an HTTP response's`);
      return tunnelError(502, "unavailable", `the server in the job answered status ${head.status}`);
    }
    const headers = new Headers();
    for (const [name, value] of head.headers) {
      // A job's cookie stays on its own host: one naming a Domain would reach every port host and the control plane's.
      if (HOP_BY_HOP.has(name.toLowerCase()) || (name.toLowerCase() === "set-cookie" && /;\s*domain\s*=/i.test(value))) continue;
      headers.append(name, value);
    }
    // The edge compresses text it is handed (Cloudflare's, and Miniflare's copy of it), and a
    // compressor holds small writes back: a streamed answer would arrive all at once at its end.
    // The server's own encoding, or none, is what the client gets.
    if (!headers.has("content-encoding")) headers.set("content-encoding", "identity");
    if (NULL_BODY.has(head.status) || (s.req.target.type === "http" && s.req.target.method === "HEAD")) {
      s.listen((f) => (f.type === FrameType.end ? this.finish(s) : this.grant(s, f.payload.byteLength)));
      return new Response(null, { status: head.status, headers });
    }
    // What the agent sent and the client has not read yet, and how the stream ended.
    const unread: { chunks: Uint8Array[]; over: "end" | Cut | null; wake: (() => void) | null } = { chunks: [], over: null, wake: null };
    const arrived = () => {
      unread.wake?.();
      unread.wake = null;
    };
    s.whenCut((cut) => {
      unread.over = cut;
      arrived();
    });
    s.listen((f) => {
      if (f.type === FrameType.data) unread.chunks.push(f.payload.slice());
      else if (f.type === FrameType.end) unread.over = "end";
      arrived();
    });
    const body = new ReadableStream<Uint8Array>(
      {
        // Credit goes back only as the client reads: a slow reader holds the agent at one window.
        pull: async (controller) => {
          while (unread.chunks.length === 0 && unread.over === null) await new Promise<void>((resolve) => (unread.wake = resolve));
          const chunk = unread.chunks.shift();
          if (chunk) {
            controller.enqueue(chunk);
            this.grant(s, chunk.byteLength);
          } else if (unread.over === "end") {
            this.finish(s);
            controller.close();
          } else controller.error(new Error(unread.over?.message ?? "the stream was cut"));
        },
        cancel: () => this.reset(s, "gone", "the client went away"),
      },
      { highWaterMark: 0 },
    );
    return new Response(body, { status: head.status, headers });
  }

  /** Sends a request body as data frames within credit, then `end`; past TUNNEL_REQUEST_BYTES the stream is cut with 413. */
  private async pumpBody(s: Stream, body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    let total = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.byteLength;
        if (total > this.bounds.requestBytes) {
          this.reset(s, "limit", `the request body is over TUNNEL_REQUEST_BYTES (${this.bounds.requestBytes} bytes)`, 413, "payload_too_large");
          break;
        }
        if (!(await this.pushData(s, FrameType.data, value))) break;
      }
      if (s.open && total <= this.bounds.requestBytes) this.sendFrame(s, jsonFrame(FrameType.end, s.id, {}));
    } catch (err) {
      this.reset(s, "error", `the request body could not be read: ${errorText(err)}`);
    } finally {
      if (!s.open) void reader.cancel().catch(() => undefined);
    }
  }

  private async webSocket(s: Stream): Promise<Response> {
    const head = await s.head;
    if (isCut(head)) return this.refusal(head);
    if (head.status !== 101) {
      this.reset(s, "refused", `the server did not accept the WebSocket (status ${head.status})`);
      return tunnelError(502, "unavailable", `the server in the job did not accept the WebSocket (status ${head.status})`);
    }
    const { 0: client, 1: server } = new WebSocketPair();
    // Binary messages as bytes at once, not Blobs (the standard default) to read asynchronously.
    server.binaryType = "arraybuffer";
    server.accept();
    const idle = this.idleTimer(s, () => {
      closeQuietly(server, 1001, "idle timeout");
      this.end(s, { code: 1001, reason: "idle timeout" });
    });
    const overLimit = () => {
      closeQuietly(server, 1009, "message over TUNNEL_WS_MESSAGE_BYTES");
      this.reset(s, "limit", `a WebSocket message is over TUNNEL_WS_MESSAGE_BYTES (${this.bounds.wsMessageBytes} bytes)`);
    };
    let fragments: Uint8Array[] = [];
    let size = 0;
    let binary = false;
    s.whenCut((cut) => closeQuietly(server, 1011, cut.message.slice(0, 120)));
    s.listen((f) => {
      idle();
      if (f.type === FrameType.end) {
        const end = readJson(f.payload, TunnelEnd) ?? {};
        closeQuietly(server, end.code ?? 1000, end.reason ?? "");
        return this.finish(s);
      }
      const m = f.type === FrameType.message ? readMessage(f.payload) : null;
      if (!m) return this.reset(s, "error", "a WebSocket stream carries message frames only");
      if (fragments.length === 0) binary = m.binary;
      size += m.bytes.byteLength;
      if (size > this.bounds.wsMessageBytes) return overLimit();
      fragments.push(m.bytes.slice());
      this.grant(s, f.payload.byteLength);
      if (!m.final) return;
      const whole = concat(fragments, size);
      fragments = [];
      size = 0;
      try {
        server.send(binary ? whole : untext.decode(whole));
      } catch {
        // the client is gone; its close event ends the stream
      }
    });
    const inbound = new InboundQueue(this.bounds.wsMessageBytes, this.inbound);
    server.addEventListener("message", (ev) => {
      idle();
      const bytes = typeof ev.data === "string" ? text.encode(ev.data) : new Uint8Array(ev.data);
      const isBinary = typeof ev.data !== "string";
      if (bytes.byteLength > this.bounds.wsMessageBytes) return overLimit();
      if (!inbound.push(bytes.byteLength, () => this.pushMessage(s, bytes, isBinary))) {
        closeQuietly(server, 1008, "the client sends faster than the job reads");
        this.reset(s, "limit", "the client sent more than the job has read, past its bound");
      }
    });
    const closed = (code: number, reason: string) => this.end(s, { code: UNSENDABLE_CLOSE.has(code) ? 1000 : code, reason: reason.slice(0, 120) });
    server.addEventListener("close", (ev) => closed(ev.code, ev.reason));
    server.addEventListener("error", () => closed(1011, "the client's socket failed"));
    return new Response(null, { status: 101, webSocket: client, headers: head.protocol ? { "sec-websocket-protocol": head.protocol } : {} });
  }

  private async exec(s: Stream): Promise<Response> {
    const head = await s.head;
    if (isCut(head)) return this.refusal(head);
    const { 0: client, 1: server } = new WebSocketPair();
    // Binary messages as bytes at once, not Blobs (the standard default) to read asynchronously.
    server.binaryType = "arraybuffer";
    server.accept();
    const say = (control: ExecControl) => {
      try {
        server.send(JSON.stringify(control));
      } catch {
        // the client is gone
      }
    };
    const idle = this.idleTimer(s, () => {
      say({ type: "error", code: "limit", message: "idle timeout" });
      closeQuietly(server, 1000, "idle timeout");
      this.reset(s, "gone", "the exec client was idle too long");
    });
    s.whenCut((cut) => {
      say({ type: "error", code: cut.code, message: cut.message });
      closeQuietly(server, 1011, cut.message.slice(0, 120));
    });
    s.listen((f) => {
      idle();
      if (f.type === FrameType.end) {
        say({ type: "exit", exit_code: readJson(f.payload, TunnelEnd)?.exit_code ?? null });
        closeQuietly(server, 1000, "exited");
        return this.finish(s);
      }
      if (f.type !== FrameType.data && f.type !== FrameType.stderr) return this.reset(s, "error", "an exec stream carries data and stderr only");
      const out = new Uint8Array(1 + f.payload.byteLength);
      out[0] = f.type === FrameType.data ? ExecChannel.stdout : ExecChannel.stderr;
      out.set(f.payload, 1);
      try {
        server.send(out);
      } catch {
        // the client is gone; its close event ends the stream
      }
      this.grant(s, f.payload.byteLength);
    });
    const inbound = new InboundQueue(0, this.inbound);
    server.addEventListener("message", (ev) => {
      idle();
      const bytes = typeof ev.data === "string" ? ev.data.length : ev.data.byteLength;
      if (!inbound.push(bytes, () => this.execInput(s, ev.data))) {
        say({ type: "error", code: "limit", message: "stdin came faster than the process read it, past its bound" });
        closeQuietly(server, 1008, "stdin past its bound");
        this.reset(s, "limit", "the exec client sent more stdin than the process has read, past its bound");
      }
    });
    const gone = () => this.reset(s, "gone", "the exec client went away");
    server.addEventListener("close", gone);
    server.addEventListener("error", gone);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** One client message of an exec: stdin bytes, or a control (eof, resize). */
  private async execInput(s: Stream, data: string | ArrayBuffer): Promise<void> {
    if (typeof data !== "string") {
      const bytes = new Uint8Array(data);
      if (bytes[0] === ExecChannel.stdin) await this.pushData(s, FrameType.data, bytes.subarray(1));
      return;
    }
    let control: ExecControl | null = null;
    try {
      const parsed = ExecControl.safeParse(JSON.parse(data));
      control = parsed.success ? parsed.data : null;
    } catch {
      control = null;
    }
    if (control?.type === "eof") this.sendFrame(s, jsonFrame(FrameType.end, s.id, {}));
    else if (control?.type === "resize") this.sendFrame(s, jsonFrame(FrameType.resize, s.id, { cols: control.cols, rows: control.rows }));
  }

  // ---- plumbing -----------------------------------------------------------------------------

  /** Sends bytes as credited frames of at most a chunk each; false once the stream is over. */
  private async pushData(s: Stream, type: FrameType, bytes: Uint8Array): Promise<boolean> {
    for (let at = 0; at < bytes.byteLength; at += TUNNEL_LIMITS.chunk_bytes) {
      const chunk = bytes.subarray(at, at + TUNNEL_LIMITS.chunk_bytes);
      if (!(await this.spend(s, chunk.byteLength))) return false;
      this.sendFrame(s, encodeTunnelFrame(type, s.id, chunk));
    }
    return s.open;
  }

  /** A WebSocket message as fragments of at most a chunk, the last marked final. */
  private async pushMessage(s: Stream, bytes: Uint8Array, binary: boolean): Promise<void> {
    let at = 0;
    do {
      const chunk = bytes.subarray(at, at + TUNNEL_LIMITS.chunk_bytes);
      at += chunk.byteLength;
      if (!(await this.spend(s, 1 + chunk.byteLength))) return;
      this.sendFrame(s, messageFrame(s.id, chunk, binary, at >= bytes.byteLength));
    } while (at < bytes.byteLength);
  }

  /** Waits for the agent's credit and the session's byte budget; false once the stream is over. */
  private async spend(s: Stream, bytes: number): Promise<boolean> {
    if (!(await s.send.take(bytes))) return false;
    const wait = this.bucketOf(s)?.take(bytes, this.now()) ?? 0;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    return s.open;
  }

  /** Hands credit back for bytes the client took, later when the session is over its byte budget. */
  private grant(s: Stream, bytes: number): void {
    const credit = s.recv.consumed(bytes);
    if (credit === 0) return;
    const wait = this.bucketOf(s)?.take(credit, this.now()) ?? 0;
    if (wait === 0) this.sendFrame(s, windowFrame(s.id, credit));
    else setTimeout(() => s.open && this.sendFrame(s, windowFrame(s.id, credit)), wait);
  }

  /** Runs `expire` after the stream's idle timeout without traffic; the returned function restarts the count. */
  private idleTimer(s: Stream, expire: () => void): () => void {
    const restart = () => {
      if (s.timer) clearTimeout(s.timer);
      s.timer = s.open ? setTimeout(expire, s.req.idle_timeout_s * 1000) : null;
    };
    restart();
    return restart;
  }

  /** The client closed (or went idle): the agent is told with `end`, and the stream is over. */
  private end(s: Stream, end: TunnelEnd): void {
    if (!s.open) return;
    this.sendFrame(s, jsonFrame(FrameType.end, s.id, end));
    this.finish(s);
  }

  /** Cuts a stream from this side: the agent gets a `reset`, the client what `cut` tells it. */
  private reset(s: Stream, code: ResetCode, message: string, status?: number, errorCode?: ErrorCode): void {
    if (!s.open) return;
    this.sendFrame(s, jsonFrame(FrameType.reset, s.id, { code, message }));
    this.cut(s, { code, message, status, errorCode });
  }

  /** The stream is over abnormally: the client still waiting for a head gets an error, one relaying is told. */
  private cut(s: Stream, cut: Cut): void {
    if (!s.open) return;
    this.finish(s);
    const waiting = s.resolveHead;
    s.resolveHead = null;
    if (waiting) waiting(cut);
    else s.cutAfterHead(cut);
  }

  private finish(s: Stream): void {
    if (!s.open) return;
    s.open = false;
    s.send.close();
    if (s.timer) clearTimeout(s.timer);
    const socket = this.sockets.get(s.ws);
    socket?.streams.delete(s.id);
    const job = this.byJob.get(s.req.job_id);
    job?.delete(s);
    if (job?.size === 0) this.byJob.delete(s.req.job_id);
    const key = this.sessionKey(s);
    const budget = this.buckets.get(key);
    if (budget && --budget.streams === 0) this.buckets.delete(key);
  }

  private refusal(cut: Cut): Response {
    const mapped = RESET_STATUS[cut.code];
    return tunnelError(cut.status ?? mapped.status, cut.errorCode ?? mapped.code, cut.message, { reset: cut.code });
  }

  private sessionKey(s: Stream): string {
    return `${s.req.job_id}#${s.req.session}`;
  }

  private bucketOf(s: Stream): ByteBucket | undefined {
    return this.buckets.get(this.sessionKey(s))?.bucket;
  }

  private sendFrame(s: Stream, frame: Uint8Array): boolean {
    try {
      s.ws.send(frame);
      return true;
    } catch {
      return false;
    }
  }
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * What all of a coordinator's clients may have queued for their agents at once: workerd hands a
 * socket's messages over with no back-pressure, and the object's memory (128 MB) is the pool's.
 */
const INBOUND_BUDGET_BYTES = 32 * 1024 * 1024;

/**
 * A client's messages on their way to the agent, in order, waiting for its credit. Bounded per
 * stream (four windows beyond one message of `messageBytes`) and across the object (the shared
 * budget); past either the client is cut, never the coordinator.
 */
class InboundQueue {
  private queued = 0;
  private order: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly messageBytes: number,
    private readonly budget: { queued: number },
  ) {}

  push(bytes: number, send: () => Promise<void>): boolean {
    if (this.queued + bytes > 4 * TUNNEL_LIMITS.window_bytes + this.messageBytes || this.budget.queued + bytes > INBOUND_BUDGET_BYTES) return false;
    this.queued += bytes;
    this.budget.queued += bytes;
    this.order = this.order
      .then(send)
      .catch(() => undefined)
      .finally(() => {
        this.queued -= bytes;
        this.budget.queued -= bytes;
      });
    return true;
  }
}

function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  const sendable = UNSENDABLE_CLOSE.has(code) ? 1000 : code;
  try {
    ws.close(sendable, reason);
  } catch {
    // A reason past 123 bytes of UTF-8 is refused: close without one rather than stay open.
    try {
      ws.close(sendable);
    } catch {
      // closed already
    }
  }
}
