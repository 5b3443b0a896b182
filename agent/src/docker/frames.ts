/** Which of the container's output streams a frame carries. */
export type OutputStream = "stdout" | "stderr";

const HEADER_BYTES = 8;
const STDERR = 2;
/** The engine's own error about the stream; it is not the program's stdout, so it goes with stderr. */
const SYSTEMERR = 3;

/**
 * Splits the engine's multiplexed attach stream into stdout and stderr. Docker sends that
 * stream only for containers without a TTY (a TTY's stream is raw bytes); no job has one.
 * Each frame is an 8-byte header (stream type, three zero bytes, payload length as uint32
 * big-endian) and then the payload. A chunk may end anywhere, inside a header included.
 * Payload bytes are passed on as they arrive rather than held until the frame is whole, so
 * one frame may reach `emit` in pieces; both streams are byte streams, so nothing is lost.
 *
 * @example
 * const demux = new FrameDemuxer((stream, bytes) => process[stream].write(bytes));
 * attached.on("data", (chunk: Buffer) => demux.write(chunk));
 */
export class FrameDemuxer {
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private headerBytes = 0;
  /** Payload bytes of the current frame still to come. */
  private left = 0;
  private stream: OutputStream = "stdout";

  constructor(private readonly emit: (stream: OutputStream, payload: Buffer) => void) {}

  write(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.left > 0) {
        const n = Math.min(this.left, chunk.length - at);
        this.emit(this.stream, chunk.subarray(at, at + n));
        this.left -= n;
        at += n;
        continue;
      }
      const n = Math.min(HEADER_BYTES - this.headerBytes, chunk.length - at);
      chunk.copy(this.header, this.headerBytes, at, at + n);
      this.headerBytes += n;
      at += n;
      if (this.headerBytes < HEADER_BYTES) return;
      this.headerBytes = 0;
      const type = this.header[0];
      this.stream = type === STDERR || type === SYSTEMERR ? "stderr" : "stdout";
      this.left = this.header.readUInt32BE(4);
    }
  }
}
