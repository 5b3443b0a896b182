import { request, type IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { WebSocket, type RawData } from "ws";
import { FrameType, TUNNEL_LIMITS, type ResetCode, type TunnelTarget } from "../../../protocol/index.ts";
import type { ContainerReach } from "./reach.ts";
import type { TunnelStream } from "./stream.ts";

type Target<T extends TunnelTarget["type"]> = Extract<TunnelTarget, { type: T }>;

/** Headers that describe one hop, not the request: the relay's own connection has its own. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);
/** What `ws` writes itself for the upgrade to the container's server. */
const WS_OWN = new Set([...HOP_BY_HOP, "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"]);

/** A header list without the names in `drop`, as node's flat raw-header array. */
export function headerArgs(headers: [string, string][], drop: ReadonlySet<string>): string[] {
  return headers.filter(([name]) => !drop.has(name.toLowerCase())).flat();
}

/** node's flat raw headers as the wire's pairs, hop-by-hop ones left out. */
export function headerPairs(raw: string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) pairs.push([raw[i]!, raw[i + 1]!]);
  return pairs;
}

/** Why a connection to the container's port failed, as a reset: nothing listening is `unreachable`. */
export function connectFailure(err: unknown, port: number): { code: ResetCode; message: string } {
  const code = (err as { code?: unknown }).code;
  if (code === "ECONNREFUSED") return { code: "unreachable", message: `nothing listens on port ${port} yet` };
  return { code: "error", message: `port ${port}: ${err instanceof Error ? err.message : String(err)}` };
}

/** Sends a readable's bytes as frames of `type`, pausing it while the coordinator has no room. */
async function pump(stream: TunnelStream, from: Readable, type: typeof FrameType.data | typeof FrameType.stderr): Promise<void> {
  for await (const chunk of from as AsyncIterable<Buffer>) if (!(await stream.data(chunk, type))) return;
}

/** An HTTP request to a declared port over a relay: `head`, the body as `data`, `end`. */
export function openHttp(stream: TunnelStream, target: Target<"http">, container: string, reach: ContainerReach): void {
  const req = request({
    agent: reach.agent(container, target.port),
    host: "127.0.0.1",
    port: target.port,
    method: target.method,
    path: target.path,
    headers: headerArgs(target.headers, HOP_BY_HOP),
  });
  let answered = false;
  req.on("response", (res: IncomingMessage) => {
    answered = true;
    stream.head({ status: res.statusCode ?? 502, headers: headerPairs(res.rawHeaders) });
    pump(stream, res, FrameType.data).then(
      () => (res.complete ? stream.end() : stream.reset("error", `port ${target.port}: the response was cut off`)),
      (err: unknown) => stream.reset("error", `port ${target.port}: ${String(err)}`),
    );
  });
  req.on("error", (err) => {
    if (answered) stream.reset("error", `port ${target.port}: ${err.message}`);
    else {
      const failed = connectFailure(err, target.port);
      stream.reset(failed.code, failed.message);
    }
  });
  stream.input = {
    data: (bytes) => req.write(bytes, () => stream.consumed(bytes.byteLength)),
    end: () => req.end(),
    close: () => req.destroy(),
  };
  if (!target.body) req.end();
}

/** A WebSocket to a declared port over a relay: `head` 101 once the server accepts, then `message` both ways, `end` with the close. */
export function openWs(stream: TunnelStream, target: Target<"ws">, container: string, reach: ContainerReach): void {
  const ws = new WebSocket(`ws://127.0.0.1:${target.port}${target.path}`, target.protocols, {
    agent: reach.agent(container, target.port),
    headers: Object.fromEntries(target.headers.filter(([name]) => !WS_OWN.has(name.toLowerCase()))),
    perMessageDeflate: false,
    maxPayload: target.max_message_bytes ?? TUNNEL_LIMITS.defaults.ws_message_bytes,
  });
  let opened = false;
  // Messages go out one at a time, in order; the socket is paused while one waits for credit.
  let sending: Promise<unknown> = Promise.resolve();
  ws.on("open", () => {
    opened = true;
    stream.head({ status: 101, headers: [], ...(ws.protocol && { protocol: ws.protocol }) });
  });
  ws.on("message", (data: RawData, binary: boolean) => {
    ws.pause();
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
    sending = sending.then(() => stream.message(bytes, binary)).finally(() => ws.resume());
  });
  ws.on("unexpected-response", (_req, res) => {
    stream.reset("error", `port ${target.port} answered HTTP ${res.statusCode} instead of accepting the WebSocket`);
    res.resume();
    ws.terminate();
  });
  ws.on("close", (code: number, reason: Buffer) => {
    // 1005 and 1006 say there was no close frame; they are never sent in one.
    const sendable = code >= 1000 && code <= 4999 && code !== 1005 && code !== 1006;
    void sending.then(() => stream.end({ ...(sendable && { code }), reason: reason.toString().slice(0, 123) }));
  });
  ws.on("error", (err) => {
    if (opened) return stream.reset("error", `port ${target.port}: ${err.message}`);
    const failed = connectFailure(err, target.port);
    stream.reset(failed.code, failed.message);
  });
  let parts: Buffer[] = [];
  let partBytes = 0;
  stream.input = {
    message: (bytes, binary, final) => {
      partBytes += bytes.byteLength;
      const most = target.max_message_bytes ?? TUNNEL_LIMITS.defaults.ws_message_bytes;
      if (partBytes > most) return stream.reset("limit", `a WebSocket message over ${most} bytes`);
      parts.push(Buffer.from(bytes));
      // A message's fragments are held until its last; their credit goes back as they are held, so a message may outgrow a window.
      const fragmentCredit = bytes.byteLength + 1;
      if (!final) return stream.consumed(fragmentCredit);
      const whole = Buffer.concat(parts);
      parts = [];
      partBytes = 0;
      if (ws.readyState !== WebSocket.OPEN) return stream.consumed(fragmentCredit);
      ws.send(whole, { binary }, () => stream.consumed(fragmentCredit));
    },
    // A code a close frame may not carry (1005, 1006, 1015...) closes it as a normal close.
    end: (end) => {
      try {
        ws.close(end.code ?? 1000, end.reason);
      } catch {
        ws.close(1000);
      }
    },
    close: () => ws.terminate(),
  };
}

/** A process run in the container as its user: `head` status 0 once started, stdout as `data`, stderr as `stderr`, `end` with its exit code. */
export function openExec(stream: TunnelStream, target: Target<"exec">, container: string, reach: ContainerReach): void {
  // Stdin that comes before the process has started waits for it (within the stream's credit), as does its EOF.
  const early: Uint8Array[] = [];
  let earlyEnd = false;
  let size = target.cols && target.rows ? { cols: target.cols, rows: target.rows } : null;
  let cut: (() => void) | null = null;
  stream.input = { data: (bytes) => early.push(bytes), end: () => (earlyEnd = true), resize: (s) => (size = s), close: () => cut?.() };
  reach.exec(container, target.argv, target.tty).then(
    async (proc) => {
      const stdin = proc.io.stdin;
      cut = () => stdin.destroy();
      if (stream.closed) return cut();
      // A terminal that cannot be resized is still a terminal: the process runs at the engine's size.
      const resize = (cols: number, rows: number) => proc.resize(cols, rows).catch(() => {});
      // Sized before the head, so a client that waits for it finds the terminal at its size.
      if (target.tty && size) await resize(size.cols, size.rows);
      // Stdin and resizes in the order they came: keys typed after a resize reach a terminal of the new size.
      let order: Promise<unknown> = Promise.resolve();
      const then = (step: () => unknown) => (order = order.then(step));
      const write = (bytes: Uint8Array) => then(() => stdin.write(bytes, () => stream.consumed(bytes.byteLength)));
      stream.input = { data: write, end: () => then(() => stdin.end()), resize: (s) => target.tty && then(() => resize(s.cols, s.rows)), close: cut };
      for (const bytes of early.splice(0)) write(bytes);
      if (earlyEnd) then(() => stdin.end());
      stream.head({ status: 0, headers: [] });
      await Promise.all([pump(stream, proc.io.stdout, FrameType.data), pump(stream, proc.io.stderr, FrameType.stderr)]);
      if (stream.closed) return;
      stream.end({ exit_code: await proc.exitCode() });
      proc.io.stdin.destroy();
    },
    (err: unknown) => stream.reset("error", `could not run ${target.argv[0]}: ${err instanceof Error ? err.message : String(err)}`),
  ).catch((err: unknown) => stream.reset("error", `the exec failed: ${String(err)}`));
}
