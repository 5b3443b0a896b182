import { createWriteStream, type WriteStream } from "node:fs";
import type { Logger } from "../logger.ts";
import type { StreamMasker } from "./masking.ts";

/** The full job log is stored as an artifact under this name. */
export const JOB_LOG_ARTIFACT = ".gridx/job.log";

/**
 * A job's stdout and stderr as one file on the host, cut at `capBytes`, uploaded as its log
 * artifact; its secrets' values are masked before they reach the disk.
 */
export class JobLogFile {
  private readonly file: WriteStream;
  private bytes = 0;

  constructor(
    readonly path: string,
    private readonly capBytes: number,
    private readonly masker: StreamMasker,
    log: Logger,
  ) {
    this.file = createWriteStream(path);
    // A full disk must not end the agent; the log artifact is then short.
    this.file.on("error", (err) => log.warn("could not write the job's log file", { err }));
  }

  write(chunk: Buffer): void {
    this.append(this.masker.write(chunk));
  }

  /** Resolves once what was written is on disk. */
  end(): Promise<void> {
    this.append(this.masker.end());
    return new Promise((resolve) => this.file.end(resolve));
  }

  private append(data: Buffer): void {
    if (this.bytes >= this.capBytes || data.length === 0) return;
    this.file.write(data.subarray(0, this.capBytes - this.bytes));
    this.bytes += data.length;
  }

  destroy(): void {
    this.file.destroy();
  }
}
