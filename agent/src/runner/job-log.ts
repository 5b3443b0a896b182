import { createWriteStream, type WriteStream } from "node:fs";
import type { Logger } from "../logger.ts";
import { DEFAULT_LOG_LIMITS, LogCap, PieceSplitter } from "./log-collector.ts";
import type { StreamMasker } from "./masking.ts";

/** The full job log is stored as an artifact under this name. */
export const JOB_LOG_ARTIFACT = ".gridx/job.log";

/**
 * A job's stdout and stderr as one file on the host, uploaded as its log artifact; its
 * secrets' values are masked before they reach the disk. Its bytes are kept as printed, up to
 * the job's log cap, counted as the live log counts them (pieces of at most the line limit):
 * past the cap the file ends with the same marker line as the live log.
 */
export class JobLogFile {
  private readonly file: WriteStream;
  private readonly cap: LogCap;
  private readonly pieces: PieceSplitter;
  /** The last byte written ended a line (or nothing was written). */
  private atLineStart = true;
  /** What one write keeps, written to the file in one go. */
  private kept: Buffer[] = [];

  constructor(
    readonly path: string,
    capBytes: number,
    private readonly masker: StreamMasker,
    log: Logger,
    lineBytes = DEFAULT_LOG_LIMITS.lineBytes,
  ) {
    this.file = createWriteStream(path);
    // A full disk must not end the agent; the log artifact is then short.
    this.file.on("error", (err) => log.warn("could not write the job's log file", { err }));
    this.cap = new LogCap(capBytes);
    this.pieces = new PieceSplitter(lineBytes, (piece, endsLine) => {
      if (!this.cap.admit(piece.length + 1)) return;
      this.kept.push(piece);
      if (endsLine) this.kept.push(NEWLINE);
    });
  }

  write(chunk: Buffer): void {
    this.pieces.write(this.masker.write(chunk));
    this.flush();
  }

  /** Writes what is left (and the cap's marker); resolves once the file is on disk. */
  end(): Promise<void> {
    this.pieces.write(this.masker.end());
    this.pieces.end();
    this.flush();
    const marker = this.cap.marker();
    if (marker) this.file.write(`${this.atLineStart ? "" : "\n"}${marker}\n`);
    return new Promise((resolve) => this.file.end(resolve));
  }

  private flush(): void {
    const data = Buffer.concat(this.kept);
    this.kept = [];
    if (data.length === 0) return;
    this.file.write(data);
    this.atLineStart = data.at(-1) === 0x0a;
  }

  destroy(): void {
    this.file.destroy();
  }
}

const NEWLINE = Buffer.from("\n");
