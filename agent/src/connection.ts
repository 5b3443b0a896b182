import { WebSocket, type ClientOptions, type RawData } from "ws";
import {
  FATAL_CLOSES,
  CoordinatorToAgent,
  decodeFrame,
  encode,
  HEARTBEAT_FRAME,
  packFrames,
  PROTOCOL_VERSION,
  type AgentToCoordinator,
  type MessageOf,
} from "../../protocol/index.ts";
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.ts";
import type { Logger } from "./logger.ts";

export interface ConnectionOptions {
  /** The control plane's base URL, http(s)://host[:port]. */
  url: string;
  token: string;
  backoff?: BackoffOptions;
  log: Logger;
  /** The hello to send on every (re)connect; the connection adds what it speaks itself. */
  hello(): Omit<MessageOf<AgentToCoordinator, "hello">["payload"], "batch_frames">;
  onMessage(msg: CoordinatorToAgent): void;
  /** The coordinator refused this agent for good (for example, a protocol it does not speak). */
  onFatal(reason: string): void;
  /** Options passed to `ws` (a proxy agent, CA certificates). */
  wsOptions?: ClientOptions;
  /** The socket may take more now: what was written has gone out, or a connection was greeted. */
  onDrained?(): void;
  /** A binary frame from the coordinator (the tunnel's, protocol/tunnel.ts). */
  onBinary?(frame: Uint8Array): void;
  /** The socket closed (it is redialed): whatever lived on it, such as tunnel streams, is gone. */
  onDisconnected?(): void;
}

/** How long a closing socket waits for the coordinator's close frame before it is cut. */
const CLOSE_WAIT_MS = 2000;

export function connectUrl(base: string): string {
  const url = new URL("/v1/agent/connect", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("protocol", String(PROTOCOL_VERSION));
  return url.toString();
}

/**
 * The agent's one socket to its coordinator: dials out, says hello, keeps a heartbeat, and
 * redials with exponential backoff and full jitter whenever the line drops.
 */
export class Connection {
  private ws: WebSocket | null = null;
  private ready = false;
  /** The coordinator reads batched frames (from its hello_ack). */
  private batchFrames = false;
  /** Messages sent during this turn of the event loop, written together at its end. */
  private outbox: { frame: string; keep: boolean }[] = [];
  private outboxBytes = 0;
  private failures = 0;
  private queue: string[] = [];
  private queuedBytes = 0;
  /** Frames given to `ws` whose write has not completed. */
  private inFlight = 0;
  private inFlightBytes = 0;
  private heartbeat: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private lastHeard = 0;
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: ConnectionOptions) {}

  start(): void {
    this.dial();
  }

  /** Connected and greeted: what is sent now goes out on this socket, not the next. */
  get writable(): boolean {
    return this.isReady();
  }

  /** Bytes sent on this socket and not yet written to the network (the log sender waits while there are many). */
  get buffered(): number {
    return this.outboxBytes + Math.max(this.ws?.bufferedAmount ?? 0, this.inFlightBytes);
  }

  /** Sends if connected and greeted, else keeps the message for the next connection. */
  send(msg: AgentToCoordinator): void {
    this.post(encode(msg), true);
  }

  /** Sends only when connected; used for messages that are re-sent after each hello anyway. */
  sendIfReady(msg: AgentToCoordinator): void {
    if (this.isReady()) this.post(encode(msg), false);
  }

  /**
   * Writes a binary (tunnel) frame now if connected and greeted, else drops it: a stream
   * does not outlive its socket. Never throws.
   */
  sendBinary(frame: Uint8Array): void {
    if (!this.isReady()) return;
    try {
      this.ws!.send(frame, { binary: true });
    } catch (err) {
      this.opts.log.warn("could not send a binary frame", { err });
    }
  }

  private isReady(): boolean {
    return this.ready && this.ws?.readyState === WebSocket.OPEN;
  }

  /**
   * Messages leave at the end of the current turn of the event loop, so a burst (a start and
   * a result, several results, log lines and a result) shares one frame where the coordinator
   * reads batches. Nothing waits longer than that turn.
   */
  private post(frame: string, keep: boolean): void {
    if (!this.isReady()) {
      if (keep) this.keep(frame);
      return;
    }
    if (this.outbox.length === 0) setImmediate(() => this.flush());
    this.outbox.push({ frame, keep });
    this.outboxBytes += frame.length;
  }

  private flush(): void {
    const out = this.outbox;
    this.outbox = [];
    this.outboxBytes = 0;
    if (!this.isReady()) {
      for (const o of out) if (o.keep) this.keep(o.frame);
      return;
    }
    for (const frame of packFrames(out.map((o) => o.frame), this.batchFrames)) this.write(this.ws!, frame);
  }

  /** Writes a frame, keeping count of those not yet written out; the last one out says the socket drained. */
  private write(ws: WebSocket, frame: string): void {
    this.inFlight++;
    this.inFlightBytes += frame.length;
    ws.send(frame, () => {
      if (ws !== this.ws) return;
      this.inFlight--;
      this.inFlightBytes -= frame.length;
      if (this.inFlight === 0) this.opts.onDrained?.();
    });
  }

  private keep(frame: string): void {
    this.queue.push(frame);
    this.queuedBytes += frame.length;
  }

  /** Says goodbye and stops redialing; resolves once the socket is shut. Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= this.shut();
    return this.closing;
  }

  private shut(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.stopHeartbeat();
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      ws.once("close", () => resolve());
      ws.close(1000, "agent stopping");
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, CLOSE_WAIT_MS).unref();
    });
  }

  private dial(): void {
    if (this.closed) return;
    const url = connectUrl(this.opts.url);
    const ws = new WebSocket(url, { ...this.opts.wsOptions, headers: { authorization: `Bearer ${this.opts.token}` }, handshakeTimeout: 15_000 });
    this.ws = ws;
    this.inFlight = 0;
    this.inFlightBytes = 0;
    ws.on("open", () => {
      this.lastHeard = Date.now();
      ws.send(encode({ type: "hello", payload: { ...this.opts.hello(), batch_frames: true } }));
    });
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => {
        this.opts.log.error("the control plane refused the connection", { status: res.statusCode, body: body.slice(0, 500) });
        if (res.statusCode === 426) this.opts.onFatal(`the control plane refused this agent's protocol: ${body.slice(0, 500)}`);
        ws.terminate();
      });
    });
    ws.on("message", (data: RawData, binary: boolean) => {
      if (!binary) return this.onFrame(data.toString());
      this.lastHeard = Date.now();
      this.opts.onBinary?.(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : new Uint8Array(data));
    });
    ws.on("close", (code: number, reason: Buffer) => this.onClose(ws, code, reason.toString()));
    ws.on("error", (err: Error) => this.opts.log.warn("connection error", { err: err.message }));
  }

  private onFrame(raw: string): void {
    this.lastHeard = Date.now();
    for (const decoded of decodeFrame(raw, CoordinatorToAgent)) {
      if (!decoded.ok) {
        this.opts.log.warn("ignored a message from the coordinator", { code: decoded.code, reason: decoded.message });
        if (decoded.code === "protocol_version_unsupported") this.opts.onFatal(decoded.message);
        continue;
      }
      this.onMessage(decoded.message);
    }
  }

  private onMessage(msg: CoordinatorToAgent): void {
    if (msg.type === "heartbeat_ack") return;
    if (msg.type === "hello_ack") {
      this.ready = true;
      this.failures = 0;
      this.batchFrames = msg.payload.batch_frames;
      this.startHeartbeat(msg.payload.heartbeat_interval_s * 1000);
      const queued = this.queue;
      this.queue = [];
      this.queuedBytes = 0;
      for (const frame of packFrames(queued, this.batchFrames)) if (this.ws) this.write(this.ws, frame);
    }
    if (msg.type === "error") this.opts.log.warn("the coordinator reported an error", msg.payload);
    this.opts.onMessage(msg);
    if (msg.type === "hello_ack") this.opts.onDrained?.();
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ready = false;
    this.batchFrames = false;
    this.stopHeartbeat();
    this.opts.onDisconnected?.();
    if (FATAL_CLOSES.includes(code)) this.opts.onFatal(`the coordinator refused this agent: ${reason}`);
    if (this.closed) return;
    const delay = backoffDelay(this.failures++, this.opts.backoff ?? DEFAULT_BACKOFF);
    this.opts.log.warn("disconnected; reconnecting", { code, reason, in_ms: delay });
    this.reconnectTimer = setTimeout(() => this.dial(), delay);
  }

  private startHeartbeat(intervalMs: number): void {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      // Three missed answers: the line is dead even if TCP has not noticed.
      if (Date.now() - this.lastHeard > intervalMs * 3) {
        this.opts.log.warn("no answer from the coordinator; redialing");
        ws.terminate();
        return;
      }
      ws.send(HEARTBEAT_FRAME);
    }, intervalMs);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }
}
