import {
  FrameType,
  jsonFrame,
  messageFrame,
  ReceiveWindow,
  SendWindow,
  TUNNEL_LIMITS,
  encodeTunnelFrame,
  windowFrame,
  type ResetCode,
  type TunnelEnd,
  type TunnelHead,
  type TunnelResize,
} from "../../../protocol/index.ts";

/** What a stream's handler (http, ws, exec) is told of the coordinator's frames. */
export interface StreamInput {
  /** A `data` payload (request body, stdin), already within credit; call `consumed` once it is written on. */
  data?(bytes: Uint8Array): void;
  /** A `message` fragment, already within credit. */
  message?(bytes: Uint8Array, binary: boolean, final: boolean): void;
  /** The coordinator sends no more (end of body, stdin EOF, a WebSocket's close). */
  end?(end: TunnelEnd): void;
  resize?(size: TunnelResize): void;
  /** The stream is over without another frame to send (a reset either way, the attempt gone): let go of everything. */
  close(): void;
}

/**
 * One tunnel stream as its handler sees it: frames out with credit taken (data split at
 * chunk_bytes, each piece waiting for the coordinator's room), and credit handed back as the
 * handler consumes what came in. Once it has sent `end` or `reset`, or been closed, it sends
 * nothing more.
 */
export class TunnelStream {
  readonly sendWindow = new SendWindow();
  readonly receiveWindow = new ReceiveWindow();
  input: StreamInput = { close: () => {} };
  private over = false;

  constructor(
    readonly id: number,
    /** The attempt's key (`job#attempt`), for resetting its streams when it ends. */
    readonly attemptKey: string,
    private readonly sendFrame: (frame: Uint8Array) => void,
    private readonly done: (stream: TunnelStream) => void,
  ) {}

  get closed(): boolean {
    return this.over;
  }

  head(head: TunnelHead): void {
    if (!this.over) this.sendFrame(jsonFrame(FrameType.head, this.id, head));
  }

  /** Sends bytes as `data` (or `stderr`) frames; resolves false when the stream ended meanwhile. */
  async data(bytes: Uint8Array, type: typeof FrameType.data | typeof FrameType.stderr = FrameType.data): Promise<boolean> {
    for (let at = 0; at < bytes.byteLength; at += TUNNEL_LIMITS.chunk_bytes) {
      const piece = bytes.subarray(at, at + TUNNEL_LIMITS.chunk_bytes);
      if (this.over || !(await this.sendWindow.take(piece.byteLength)) || this.over) return false;
      this.sendFrame(encodeTunnelFrame(type, this.id, piece));
    }
    return !this.over;
  }

  /** Sends one WebSocket message as `message` fragments, the last one final. A fragment's whole payload (its flag byte too) spends credit. */
  async message(bytes: Uint8Array, binary: boolean): Promise<boolean> {
    let at = 0;
    do {
      const piece = bytes.subarray(at, at + TUNNEL_LIMITS.chunk_bytes);
      at += TUNNEL_LIMITS.chunk_bytes;
      if (this.over || !(await this.sendWindow.take(piece.byteLength + 1)) || this.over) return false;
      this.sendFrame(messageFrame(this.id, piece, binary, at >= bytes.byteLength));
    } while (at < bytes.byteLength);
    return !this.over;
  }

  /** The handler has written on `bytes` of what came in: credit goes back in batches. */
  consumed(bytes: number): void {
    const grant = this.receiveWindow.consumed(bytes);
    if (grant > 0 && !this.over) this.sendFrame(windowFrame(this.id, grant));
  }

  end(end: TunnelEnd = {}): void {
    if (this.over) return;
    this.sendFrame(jsonFrame(FrameType.end, this.id, end));
    this.finish();
  }

  reset(code: ResetCode, message: string): void {
    if (this.over) return;
    this.sendFrame(jsonFrame(FrameType.reset, this.id, { code, message: message.slice(0, 2000) }));
    this.finish();
  }

  /** Ends the stream without a frame (the coordinator reset it, or the socket is gone). */
  close(): void {
    if (this.over) return;
    this.finish();
  }

  private finish(): void {
    this.over = true;
    this.sendWindow.close();
    this.done(this);
    try {
      this.input.close();
    } catch {
      // A handler's cleanup failing leaves nothing more to do for this stream.
    }
  }
}
