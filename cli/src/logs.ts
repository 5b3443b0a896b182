import type { FailureReason, JobStatus } from "../../protocol/index.ts";
import type { ApiClient } from "./api.ts";
import { CliError, NetworkError } from "./errors.ts";
import { SseParser } from "./sse.ts";

/** One log line as the API stores it. */
export interface JobLogLine {
  attempt: number;
  seq: number;
  stream: "stdout" | "stderr" | "system" | "build";
  ts: number;
  text: string;
}

/** How a followed job ended (the `end` event). */
export interface JobEnd {
  status: JobStatus;
  exit_code: number | null;
  failure_reason: FailureReason | null;
}

export interface Writable {
  write(text: string): unknown;
}

/**
 * Writes log lines where a terminal user expects them: the job's stdout to stdout, its
 * stderr and gridx's own notes (`[gridx: ...]`) to stderr, a marker when a new attempt
 * starts. With `json`, one JSON object per line on stdout instead.
 */
export class LogPrinter {
  private attempt = 0;

  constructor(
    private readonly out: { stdout: Writable; stderr: Writable },
    private readonly opts: { json?: boolean; quiet?: boolean } = {},
  ) {}

  line(line: JobLogLine): void {
    if (this.opts.json) {
      this.out.stdout.write(JSON.stringify({ type: "log", ...line }) + "\n");
      return;
    }
    if (line.attempt !== this.attempt) {
      if (this.attempt !== 0 && !this.opts.quiet) this.out.stderr.write(`[gridx: attempt ${line.attempt}]\n`);
      this.attempt = line.attempt;
    }
    if (line.stream === "stdout") this.out.stdout.write(line.text + "\n");
    else if (line.stream === "stderr" || !this.opts.quiet) this.out.stderr.write(line.text + "\n");
  }
}

const notFound = "list jobs with `gridx list`";

/** Every line logged so far, page by page; resolves with the job's status. */
export async function readLogs(api: ApiClient, id: string, onLine: (line: JobLogLine) => void): Promise<JobStatus> {
  let after: string | undefined;
  for (;;) {
    const page = await api.json(api.rpc.v1.jobs[":id"].logs.$get({ param: { id }, query: after ? { after } : {} }), { notFound });
    // The route answers JSON here, and an event stream only to `follow`.
    if (typeof page !== "object" || !("lines" in page)) throw new CliError(`the log of ${id} did not come back as a page of lines`);
    for (const line of page.lines) onLine(line);
    if (!page.lines.length || !page.next_cursor || page.next_cursor === after) return page.status;
    after = page.next_cursor;
  }
}

/** Reconnects in a row before a broken log stream is an error. */
const MAX_RECONNECTS = 5;

/**
 * Follows a job's log stream (server-sent events) until the job ends, calling `onLine` for
 * each line in order; resolves with how it ended. A dropped connection is picked up again
 * after the last line seen.
 */
export async function followLogs(api: ApiClient, id: string, onLine: (line: JobLogLine) => void, opts: { signal?: AbortSignal } = {}): Promise<JobEnd> {
  let after: string | undefined;
  let failures = 0;
  for (;;) {
    try {
      const res = await api.ok(api.rpc.v1.jobs[":id"].logs.$get({ param: { id }, query: { follow: "1", ...(after ? { after } : {}) } }, { init: { signal: opts.signal } }), { notFound });
      if (!res.body) throw new Error("the log stream has no body");
      const reader = res.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      const decoder = new TextDecoder();
      const parser = new SseParser();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
          failures = 0;
          if (ev.event === "log") {
            onLine(JSON.parse(ev.data) as JobLogLine);
            if (ev.id) after = ev.id;
          } else if (ev.event === "end") {
            await reader.cancel().catch(() => undefined);
            return JSON.parse(ev.data) as JobEnd;
          }
        }
      }
      throw new Error("the log stream ended before the job did");
    } catch (err) {
      // An answer from the server (404, 401, ...) is final; a lost connection is tried again.
      if ((err instanceof CliError && !(err instanceof NetworkError)) || opts.signal?.aborted) throw err;
      if (++failures > MAX_RECONNECTS) throw new CliError(`lost the log stream of ${id} (${(err as Error).message}); follow it again with \`gridx logs ${id} -f\``);
      await new Promise((r) => setTimeout(r, 500 * failures));
    }
  }
}
