import { z } from "zod";

/**
 * The tunnel: streams between the control plane and a running job's container, carried as
 * binary frames on the agent's own outbound WebSocket next to the JSON job messages (which
 * stay text frames). A stream is opened by the coordinator only (`open`), for one attempt the
 * receiving agent holds; the agent reaches the container without giving it a network
 * (docs/decisions/0019-tunnel.md).
 *
 * A frame is `[type: u8][stream: u32 big-endian][payload]`. Data-bearing frames (`data`,
 * `stderr`, `message`) spend the sender's credit for that stream: each side may have at most
 * `window_bytes` of a stream's data unread by the other, and the reader hands credit back with
 * `window` as it consumes. So a large download holds at most one window per stream in flight
 * and the job messages behind it wait for no more than that.
 */
export const TUNNEL_LIMITS = {
  /** Ports a job may declare. */
  ports_per_job: 4,
  /** Largest payload of one frame; longer bodies and messages are split. */
  chunk_bytes: 64 * 1024,
  /** Initial (and steady) credit per stream and direction. */
  window_bytes: 256 * 1024,
  /** Defaults of the control plane's settings (see docs/settings.md). */
  defaults: {
    streams_per_job: 32,
    streams_per_agent: 256,
    /** Bytes per second one job's port (or exec) session may move, both directions together. */
    session_bytes_per_s: 64 * 1024 * 1024,
    /** A request body through the tunnel. */
    request_bytes: 64 * 1024 * 1024,
    /** One WebSocket message through the tunnel, either direction. */
    ws_message_bytes: 16 * 1024 * 1024,
    /** How long the agent has to answer an `open` with `head` or `reset`. */
    open_timeout_s: 30,
  },
  idle_timeout_s: { min: 60, max: 7 * 24 * 3600, default: 3600 },
  /** A one-time link's life. */
  link_ttl_s: 60,
  exec_argv: { max: 256, arg_chars: 8192 },
} as const;

export const FrameType = {
  /** coordinator → agent, JSON `TunnelOpen`. */
  open: 1,
  /** agent → coordinator, JSON `TunnelHead`: the response head, the WebSocket accepted, the process started. */
  head: 2,
  /** Body bytes, a process's stdin (to the agent) or stdout (from it). Spends credit. */
  data: 3,
  /** A process's stderr, agent → coordinator. Spends credit. */
  stderr: 4,
  /** A WebSocket message fragment: payload `[flags: u8][bytes]`, flags `MESSAGE_BINARY | MESSAGE_FINAL`. Spends credit. */
  message: 5,
  /** Credit handed back: payload a u32 of bytes. */
  window: 6,
  /** The sender will send no more data: JSON `TunnelEnd` (a process's exit code, a WebSocket's close). */
  end: 7,
  /** The stream is over, abnormally: JSON `TunnelReset`. Either side; no frame of it follows. */
  reset: 8,
  /** coordinator → agent, JSON `TunnelResize`: an exec's terminal changed size. */
  resize: 9,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];
const FRAME_TYPES = new Set<number>(Object.values(FrameType));
/** Frames whose payload spends the sender's credit. */
export const CREDITED: ReadonlySet<number> = new Set([FrameType.data, FrameType.stderr, FrameType.message]);

export const MESSAGE_BINARY = 1;
export const MESSAGE_FINAL = 2;

export interface TunnelFrame {
  type: FrameType;
  stream: number;
  payload: Uint8Array;
}

const HEADER_BYTES = 5;
/** Stream ids are the coordinator's: 1 to 2^32 - 1 per socket, never reused while the socket lives. */
export const MAX_STREAM_ID = 0xffff_ffff;

export function encodeTunnelFrame(type: FrameType, stream: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, type);
  view.setUint32(1, stream);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** A frame's bytes, or null when they are not a frame (a broken or hostile peer): never throws. */
export function decodeTunnelFrame(raw: ArrayBuffer | Uint8Array): TunnelFrame | null {
  const bytes = raw instanceof Uint8Array ? raw : new Uint8Array(raw);
  if (bytes.byteLength < HEADER_BYTES || bytes.byteLength > HEADER_BYTES + TUNNEL_LIMITS.chunk_bytes + 1) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint8(0);
  const stream = view.getUint32(1);
  if (!FRAME_TYPES.has(type) || stream === 0) return null;
  return { type: type as FrameType, stream, payload: bytes.subarray(HEADER_BYTES) };
}

// Both runtimes have them; the protocol's own lib leaves them out to stay runtime-neutral.
declare const TextEncoder: new () => { encode(s: string): Uint8Array };
declare const TextDecoder: new () => { decode(b: Uint8Array): string };
const text = new TextEncoder();
const untext = new TextDecoder();

export function jsonFrame(type: FrameType, stream: number, body: unknown): Uint8Array {
  return encodeTunnelFrame(type, stream, text.encode(JSON.stringify(body)));
}

/** A JSON payload read against its schema; null when it does not parse. */
export function readJson<S extends z.ZodType>(payload: Uint8Array, schema: S): z.infer<S> | null {
  try {
    const r = schema.safeParse(JSON.parse(untext.decode(payload)));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

export function windowFrame(stream: number, bytes: number): Uint8Array {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setUint32(0, bytes);
  return encodeTunnelFrame(FrameType.window, stream, payload);
}

export function readWindow(payload: Uint8Array): number | null {
  if (payload.byteLength !== 4) return null;
  return new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
}

export function messageFrame(stream: number, bytes: Uint8Array, binary: boolean, final: boolean): Uint8Array {
  const payload = new Uint8Array(1 + bytes.byteLength);
  payload[0] = (binary ? MESSAGE_BINARY : 0) | (final ? MESSAGE_FINAL : 0);
  payload.set(bytes, 1);
  return encodeTunnelFrame(FrameType.message, stream, payload);
}

export function readMessage(payload: Uint8Array): { binary: boolean; final: boolean; bytes: Uint8Array } | null {
  if (payload.byteLength < 1) return null;
  const flags = payload[0]!;
  return { binary: (flags & MESSAGE_BINARY) !== 0, final: (flags & MESSAGE_FINAL) !== 0, bytes: payload.subarray(1) };
}

/** A declared port's number. */
export const PortNumber = z.number().int().min(1).max(65535);
const HeaderList = z.array(z.tuple([z.string().max(256), z.string().max(16 * 1024)])).max(256);
const JobRef = { job_id: z.string().min(1).max(64), attempt: z.number().int().min(1).max(10_000) };

/** What a stream reaches: an HTTP request or a WebSocket to a declared port, or a process run in the container. */
export const TunnelTarget = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("http"),
    port: PortNumber,
    method: z.string().regex(/^[A-Z]{1,16}$/),
    /** Path and query as the server in the container sees them. */
    path: z.string().startsWith("/").max(16 * 1024),
    headers: HeaderList,
    /** Whether body `data` frames follow (then an `end`). */
    body: z.boolean(),
  }),
  z.object({
    type: z.literal("ws"),
    port: PortNumber,
    path: z.string().startsWith("/").max(16 * 1024),
    headers: HeaderList,
    protocols: z.array(z.string().max(256)).max(16),
    /** The control plane's TUNNEL_WS_MESSAGE_BYTES, so both ends cut a message at the same size; absent: the default. */
    max_message_bytes: z.number().int().min(1).max(1024 * 1024 * 1024).optional(),
  }),
  z.object({
    type: z.literal("exec"),
    argv: z.array(z.string().max(TUNNEL_LIMITS.exec_argv.arg_chars)).min(1).max(TUNNEL_LIMITS.exec_argv.max),
    tty: z.boolean(),
    cols: z.number().int().min(1).max(1000).optional(),
    rows: z.number().int().min(1).max(1000).optional(),
  }),
]);
export type TunnelTarget = z.infer<typeof TunnelTarget>;

export const TunnelOpen = z.object({ ...JobRef, target: TunnelTarget });
export type TunnelOpen = z.infer<typeof TunnelOpen>;

/** `status`: the HTTP status (101 for an accepted WebSocket; 0 for a started process). */
export const TunnelHead = z.object({ status: z.number().int().min(0).max(999), headers: HeaderList.default([]), protocol: z.string().max(256).optional() });
export type TunnelHead = z.infer<typeof TunnelHead>;

/** `exit_code`: a process's; `code`/`reason`: a WebSocket's close. */
export const TunnelEnd = z.object({ exit_code: z.number().int().nullable().optional(), code: z.number().int().min(1000).max(4999).optional(), reason: z.string().max(123).optional() }).default({});
export type TunnelEnd = z.infer<typeof TunnelEnd>;

/**
 * Why a stream was cut. `unreachable`: nothing answers on the port (yet); `refused`: the agent
 * will not open it (not its attempt, port not declared, exec off); `limit`: a bound was hit;
 * `gone`: the job or the agent's connection ended.
 */
export const ResetCode = z.enum(["unreachable", "refused", "limit", "gone", "error"]);
export type ResetCode = z.infer<typeof ResetCode>;
export const TunnelReset = z.object({ code: ResetCode, message: z.string().max(2000) });
export type TunnelReset = z.infer<typeof TunnelReset>;

export const TunnelResize = z.object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) });
export type TunnelResize = z.infer<typeof TunnelResize>;

/**
 * Credit for one stream's outgoing data: `take` waits until the peer has room. Pure
 * bookkeeping plus waiters; both sides use it.
 */
export class SendWindow {
  private credit: number = TUNNEL_LIMITS.window_bytes;
  private waiters: (() => void)[] = [];
  private closed = false;

  get available(): number {
    return this.credit;
  }

  /** Resolves once `bytes` may be sent (true), or false when the stream closed meanwhile. */
  async take(bytes: number): Promise<boolean> {
    while (!this.closed && this.credit < Math.min(bytes, TUNNEL_LIMITS.window_bytes)) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.closed) return false;
    this.credit -= bytes;
    return true;
  }

  grant(bytes: number): void {
    // A peer granting past a window is broken; capping keeps the bound the bound.
    this.credit = Math.min(this.credit + bytes, TUNNEL_LIMITS.window_bytes);
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    const waiting = this.waiters.splice(0);
    for (const w of waiting) w();
  }
}

/**
 * Credit owed back for one stream's incoming data: `consumed` returns how much to grant now
 * (batched to half a window, so credit costs few frames), or 0. `received` is false when the
 * peer sent past its credit, which ends the stream.
 */
export class ReceiveWindow {
  private outstanding = 0;
  private unread = 0;

  received(bytes: number): boolean {
    this.unread += bytes;
    return this.unread <= TUNNEL_LIMITS.window_bytes;
  }

  consumed(bytes: number): number {
    this.unread -= bytes;
    this.outstanding += bytes;
    if (this.outstanding < TUNNEL_LIMITS.window_bytes / 2) return 0;
    const grant = this.outstanding;
    this.outstanding = 0;
    return grant;
  }
}

/**
 * The exec socket a client (the CLI) speaks with `GET /v1/jobs/:id/exec`: binary messages are
 * `[channel: u8][bytes]` (0 stdin from the client, 1 stdout, 2 stderr to it); text messages are
 * JSON `ExecControl`.
 */
export const ExecChannel = { stdin: 0, stdout: 1, stderr: 2 } as const;
export const ExecControl = z.discriminatedUnion("type", [
  /** client → server: stdin is over. */
  z.object({ type: z.literal("eof") }),
  z.object({ type: z.literal("resize"), cols: TunnelResize.shape.cols, rows: TunnelResize.shape.rows }),
  /** server → client, last: the process's exit code (null: killed or unknown). */
  z.object({ type: z.literal("exit"), exit_code: z.number().int().nullable() }),
  /** server → client, last: the exec could not run or was cut. */
  z.object({ type: z.literal("error"), code: ResetCode, message: z.string() }),
]);
export type ExecControl = z.infer<typeof ExecControl>;

/** Where a job's port is served on the control plane; Jupyter's base URL and GRIDX_PORT_<n>_PATH. */
export const portPath = (jobId: string, port: number): string => `/v1/jobs/${jobId}/ports/${port}/`;
