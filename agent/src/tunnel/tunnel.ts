import { CREDITED, decodeTunnelFrame, FrameType, readJson, readMessage, readWindow, TunnelEnd, TunnelOpen, TunnelResize, type TunnelFrame } from "../../../protocol/index.ts";
import type { Logger } from "../logger.ts";
import { admit, AGENT_STREAM_CAP, type OpenAttempt } from "./decide.ts";
import { openExec, openHttp, openWs } from "./handlers.ts";
import type { ContainerReach } from "./reach.ts";
import { TunnelStream } from "./stream.ts";

export interface TunnelDeps {
  /** Writes a binary frame on the coordinator's socket; must not throw (a closed socket drops it). */
  send(frame: Uint8Array): void;
  /** The attempt, if this agent runs it and its container has started. */
  attempt(jobId: string, attempt: number): OpenAttempt | undefined;
  /** How containers are reached; none: every open is refused. */
  reach: ContainerReach | null;
  log: Logger;
  /** Streams open at once (default AGENT_STREAM_CAP). */
  streamCap?: number;
}

export const attemptKey = (jobId: string, attempt: number) => `${jobId}#${attempt}`;

/**
 * The agent's end of the tunnel: reads the coordinator's binary frames, opens what `open`
 * asks for when admit() lets it, keeps each stream's credit both ways, and resets the streams
 * of an attempt that ends. Never throws: a bad frame is dropped, a broken stream reset.
 */
export class Tunnel {
  private readonly streams = new Map<number, TunnelStream>();

  constructor(private readonly deps: TunnelDeps) {}

  get openStreams(): number {
    return this.streams.size;
  }

  /** One binary frame from the coordinator. */
  receive(raw: Uint8Array): void {
    try {
      const frame = decodeTunnelFrame(raw);
      if (!frame) return this.deps.log.warn("ignored a tunnel frame that does not parse", { bytes: raw.byteLength });
      this.dispatch(frame);
    } catch (err) {
      this.deps.log.warn("a tunnel frame failed", { err });
    }
  }

  /** The attempt's container is gone (exited, or the run ended): its streams are reset. */
  attemptEnded(jobId: string, attempt: number, container?: string): void {
    const key = attemptKey(jobId, attempt);
    for (const stream of [...this.streams.values()]) if (stream.attemptKey === key) stream.reset("gone", "the job ended");
    if (container) this.deps.reach?.forget(container);
  }

  /** The socket to the coordinator is gone, and with it every stream (the coordinator resets its own). */
  disconnected(): void {
    for (const stream of [...this.streams.values()]) stream.close();
  }

  private dispatch(frame: TunnelFrame): void {
    if (frame.type === FrameType.open) return this.open(frame);
    const stream = this.streams.get(frame.stream);
    // A frame for a stream already over (its reset crossed this one): nothing to do.
    if (!stream) return;
    if (CREDITED.has(frame.type)) {
      if (!stream.receiveWindow.received(frame.payload.byteLength)) return stream.reset("limit", "the coordinator sent past its credit");
    }
    switch (frame.type) {
      case FrameType.data:
        return stream.input.data ? stream.input.data(frame.payload) : stream.reset("error", "this stream takes no data");
      case FrameType.message: {
        const message = readMessage(frame.payload);
        if (!message || !stream.input.message) return stream.reset("error", "this stream takes no WebSocket messages");
        return stream.input.message(message.bytes, message.binary, message.final);
      }
      case FrameType.window: {
        const bytes = readWindow(frame.payload);
        if (bytes !== null) stream.sendWindow.grant(bytes);
        return;
      }
      case FrameType.end:
        return stream.input.end?.(readJson(frame.payload, TunnelEnd) ?? {});
      case FrameType.reset:
        return stream.close();
      case FrameType.resize: {
        const size = readJson(frame.payload, TunnelResize);
        if (size) stream.input.resize?.(size);
        return;
      }
      default:
        // head and stderr are the agent's to send, not to receive.
        return stream.reset("error", `frame type ${frame.type} is not one the coordinator sends`);
    }
  }

  private open(frame: TunnelFrame): void {
    const send = (bytes: Uint8Array) => this.send(bytes);
    const drop = (s: TunnelStream) => {
      if (this.streams.get(s.id) === s) this.streams.delete(s.id);
    };
    const open = readJson(frame.payload, TunnelOpen);
    if (!open) return new TunnelStream(frame.stream, "", send, drop).reset("error", "the open frame does not parse");
    const stream = new TunnelStream(frame.stream, attemptKey(open.job_id, open.attempt), send, drop);
    // An id in use is the coordinator's mistake: the stream it already has keeps going.
    if (this.streams.has(frame.stream)) return stream.reset("error", `stream ${frame.stream} is already open`);
    const reach = this.deps.reach;
    const admitted = admit(open, this.deps.attempt(open.job_id, open.attempt), this.streams.size, this.deps.streamCap ?? AGENT_STREAM_CAP);
    if (!admitted.ok) return stream.reset(admitted.code, admitted.message);
    if (!reach) return stream.reset("refused", "this agent does not serve tunnels");
    this.streams.set(frame.stream, stream);
    const container = admitted.attempt.container;
    const target = open.target;
    try {
      if (target.type === "http") openHttp(stream, target, container, reach);
      else if (target.type === "ws") openWs(stream, target, container, reach);
      else openExec(stream, target, container, reach);
    } catch (err) {
      // A request node will not make (a header it refuses): this stream fails, the others go on.
      stream.reset("error", `could not open the stream: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private send(frame: Uint8Array): void {
    try {
      this.deps.send(frame);
    } catch (err) {
      this.deps.log.warn("could not send a tunnel frame", { err });
    }
  }
}
