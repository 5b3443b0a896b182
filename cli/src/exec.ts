import { WebSocket, type RawData } from "ws";
import { ExecChannel, ExecControl, TUNNEL_LIMITS } from "../../protocol/tunnel.ts";
import type { ApiClient } from "./api.ts";
import { CliError, NetworkError } from "./errors.ts";
import { EXIT } from "./exit-codes.ts";

/** A process to run in a running job's container. */
export interface ExecRequest {
  job: string;
  argv: string[];
  tty: boolean;
}

/** A terminal's size in characters. */
export interface TerminalSize {
  cols: number;
  rows: number;
}

/** Where an exec reads and writes: the user's terminal, or a test's streams. */
export interface ExecIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: { write(chunk: Uint8Array | string): unknown; once?(event: "drain", listener: () => void): unknown };
  stderr: { write(chunk: Uint8Array | string): unknown; once?(event: "drain", listener: () => void): unknown };
  /** The local terminal, when there is one: its size, and its changes (SIGWINCH); returns the unsubscribe. */
  terminal?: { size(): TerminalSize; onResize(listener: () => void): () => void };
}

/** The exec socket's URL: `cmd` once per argument, in order (see protocol/tunnel.ts). */
export function execUrl(base: string, req: ExecRequest, size?: TerminalSize): string {
  const url = new URL(`${base.replace(/\/+$/, "")}/v1/jobs/${encodeURIComponent(req.job)}/exec`);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const arg of req.argv) url.searchParams.append("cmd", arg);
  url.searchParams.set("tty", req.tty ? "1" : "0");
  if (size) {
    url.searchParams.set("cols", String(size.cols));
    url.searchParams.set("rows", String(size.rows));
  }
  return url.href;
}

const hints = {
  notFound: "list jobs with `gridx list`",
  forbidden: "exec needs the member role in the job's project, and a pool whose sandbox policy allows exec",
};

/** A stdin chunk and its channel byte stay within one tunnel frame. */
const STDIN_CHUNK = TUNNEL_LIMITS.chunk_bytes - 1;

/**
 * Runs `req.argv` in the job's container over `GET /v1/jobs/:id/exec` and resolves with the
 * process's exit code: stdin goes to it (then `eof`), its stdout and stderr come back to ours.
 * With a TTY, the local terminal is put in raw mode and its size follows SIGWINCH. Rejects
 * with a CliError when the server refuses the socket, sends `error`, or the socket closes
 * before the process's `exit`. One chunk of stdin is in flight at a time, and a full stdout
 * pauses the socket, so neither side buffers without bound.
 */
export function runExec(api: ApiClient, req: ExecRequest, io: ExecIo): Promise<number> {
  const terminal = req.tty ? io.terminal : undefined;
  const ws = new WebSocket(execUrl(api.base, req, terminal?.size()), { headers: api.auth });
  const stdin = io.stdin;
  let raw = false;
  let unsubscribe: (() => void) | undefined;

  return new Promise<number>((resolve, reject) => {
    let settled = false;
    const finish = (outcome: { code: number } | { error: Error }) => {
      if (settled) return;
      settled = true;
      stdin.off("data", onStdin);
      stdin.off("end", onStdinEnd);
      stdin.pause();
      if (raw) stdin.setRawMode?.(false);
      unsubscribe?.();
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
      if ("code" in outcome) resolve(outcome.code);
      else reject(outcome.error);
    };

    const onStdin = (chunk: Buffer | string) => {
      const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      stdin.pause();
      for (let i = 0; i < bytes.length; i += STDIN_CHUNK) {
        const last = i + STDIN_CHUNK >= bytes.length;
        ws.send(Buffer.concat([Buffer.of(ExecChannel.stdin), bytes.subarray(i, i + STDIN_CHUNK)]), last ? () => settled || stdin.resume() : undefined);
      }
    };
    const onStdinEnd = () => ws.send(JSON.stringify({ type: "eof" } satisfies ExecControl));

    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        const answer = { status: res.statusCode ?? 0, statusText: res.statusMessage ?? "", url: ws.url, text: async () => body, headers: { get: (n: string) => [res.headers[n.toLowerCase()]].flat()[0] ?? null } };
        void api.error(answer, hints).then((error) => finish({ error }));
      });
    });
    ws.on("error", (err: NodeJS.ErrnoException) => finish({ error: new NetworkError(`cannot reach ${api.base} for the exec (${err.code ?? err.message})`) }));
    ws.on("open", () => {
      if (terminal && stdin.isTTY && stdin.setRawMode) {
        stdin.setRawMode(true);
        raw = true;
      }
      unsubscribe = terminal?.onResize(() => ws.send(JSON.stringify({ type: "resize", ...terminal.size() } satisfies ExecControl)));
      stdin.on("data", onStdin);
      stdin.on("end", onStdinEnd);
      stdin.resume();
    });
    ws.on("message", (data: RawData, binary: boolean) => {
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (binary) {
        const out = bytes[0] === ExecChannel.stdout ? io.stdout : bytes[0] === ExecChannel.stderr ? io.stderr : undefined;
        // A full stdout (a slow pipe) holds the socket until it drains: the server's credit does the rest.
        if (out && out.write(bytes.subarray(1)) === false && out.once) {
          ws.pause();
          out.once("drain", () => ws.resume());
        }
        return;
      }
      let control: ExecControl | undefined;
      try {
        control = ExecControl.safeParse(JSON.parse(bytes.toString("utf8"))).data;
      } catch {
        control = undefined;
      }
      if (control?.type === "exit") finish({ code: control.exit_code ?? EXIT.noExitCode });
      else if (control?.type === "error") finish({ error: new CliError(`the exec in job ${req.job} failed (${control.code}): ${control.message}`) });
    });
    ws.on("close", (code, reason) => {
      finish({ error: new CliError(`the exec's connection closed before the process ended (${code}${reason.length ? `: ${reason.toString()}` : ""}); the job goes on`) });
    });
  });
}
