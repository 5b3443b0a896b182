import { createWriteStream, type WriteStream } from "node:fs";
import type { Logger } from "../logger.ts";

/** The full job log is stored as an artifact under this name. */
export const JOB_LOG_ARTIFACT = ".gridx/job.log";

/** A job's stdout and stderr as one file on the host, cut at `capBytes`, uploaded as its log artifact. */
export class JobLogFile {
  private readonly file: WriteStream;
  private bytes = 0;

  constructor(
    readonly path: string,
    private readonly capBytes: number,
    log: Logger,
  ) {
    this.file = createWriteStream(path);
    // A full disk must not end the agent; the log artifact is then short.
    this.file.on("error", (err) => log.warn("could not write the job's log file", { err }));
  }

  write(chunk: Buffer): void {
    if (this.bytes >= this.capBytes) return;
    this.file.write(chunk.subarray(0, this.capBytes - this.bytes));
    this.bytes += chunk.length;
  }

  /** Resolves once what was written is on disk. */
  end(): Promise<void> {
    return new Promise((resolve) => this.file.end(resolve));
  }

  destroy(): void {
    this.file.destroy();
  }
}
