import type { FailureReason, JobStatus } from "../../protocol/index.ts";
import type { ApiClient } from "./api.ts";
import { CliError } from "./errors.ts";
import { followStream } from "./follow.ts";

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

/**
 * Follows a job's log stream until the job ends, calling `onLine` for each line in order;
 * resolves with how it ended. A dropped connection, or the server's `resume` at the stream's
 * maximum duration, is picked up again after the last line seen (see followStream).
 */
export function followLogs(api: ApiClient, id: string, onLine: (line: JobLogLine) => void, opts: { signal?: AbortSignal } = {}): Promise<JobEnd> {
  return followStream<JobEnd>(
    {
      open: (after, signal) => api.ok(api.rpc.v1.jobs[":id"].logs.$get({ param: { id }, query: { follow: "1", ...(after ? { after } : {}) } }, { init: { signal } }), { notFound }),
      onEvent: (ev) => {
        if (ev.event === "log") onLine(JSON.parse(ev.data) as JobLogLine);
        return ev.event === "end" ? { done: JSON.parse(ev.data) as JobEnd } : undefined;
      },
      what: `the log stream of ${id}`,
      again: `follow it again with \`gridx logs ${id} -f\``,
    },
    opts,
  );
}
