import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { ExecChannel, type ExecControl } from "../../protocol/tunnel.ts";
import { ApiClient } from "../../cli/src/api.ts";
import { dispatch } from "../../cli/src/cli.ts";
import { SHELL_ARGV } from "../../cli/src/commands/sessions.ts";
import { COMMANDS } from "../../cli/src/registry.ts";
import { CliError } from "../../cli/src/errors.ts";
import { EXIT } from "../../cli/src/exit-codes.ts";
import { execUrl, runExec, type ExecIo } from "../../cli/src/exec.ts";

/*
 * The exec client against a local server that speaks the exec socket's side of the contract
 * (protocol/tunnel.ts): `[channel][bytes]` binary messages, JSON ExecControl text messages.
 */
type Script = (ws: WebSocket, url: URL) => void;
let server: Server;
let wss: WebSocketServer;
let base: string;
let script: Script;
/** What the server refuses the upgrade with, instead of accepting it. */
let refusal: { status: number; body: unknown } | undefined;
let seenAuth: string | undefined;

beforeAll(async () => {
  server = createServer();
  wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    seenAuth = req.headers.authorization;
    if (refusal) {
      const body = JSON.stringify(refusal.body);
      socket.end(`HTTP/1.1 ${refusal.status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => script(ws, new URL(req.url!, "http://x")));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const ws of wss.clients) ws.terminate();
  await new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  refusal = undefined;
  seenAuth = undefined;
});

const send = (ws: WebSocket, channel: number, text: string) => ws.send(Buffer.concat([Buffer.of(channel), Buffer.from(text)]));
const control = (ws: WebSocket, c: ExecControl) => ws.send(JSON.stringify(c));

function fakeIo(input: string[] = [], terminal?: ExecIo["terminal"]) {
  const out = { stdout: "", stderr: "" };
  const stdin = new PassThrough();
  for (const chunk of input) stdin.write(chunk);
  stdin.end();
  const io: ExecIo = {
    stdin,
    stdout: { write: (b) => (out.stdout += Buffer.from(b).toString()) },
    stderr: { write: (b) => (out.stderr += Buffer.from(b).toString()) },
    ...(terminal ? { terminal } : {}),
  };
  return { io, out };
}

const api = () => new ApiClient(base, "gxu_test");

describe("execUrl", () => {
  it("names every argument as a cmd, in order, with tty and the terminal's size; https becomes wss and a base path stays", () => {
    const url = new URL(execUrl("https://cp.example.com/grid/", { job: "j_1", argv: ["sh", "-c", "echo a&b"], tty: true }, { cols: 120, rows: 40 }));
    expect(url.protocol).toBe("wss:");
    expect(url.pathname).toBe("/grid/v1/jobs/j_1/exec");
    expect(url.searchParams.getAll("cmd")).toEqual(["sh", "-c", "echo a&b"]);
    expect(Object.fromEntries([...url.searchParams].filter(([k]) => k !== "cmd"))).toEqual({ tty: "1", cols: "120", rows: "40" });
    expect(new URL(execUrl("http://127.0.0.1:8787", { job: "j_1", argv: ["ls"], tty: false })).search).toBe("?cmd=ls&tty=0");
  });
});

describe("runExec", () => {
  it("pipes stdin to the process, writes its stdout and stderr, and resolves with its exit code", async () => {
    let query: URL | undefined;
    script = (ws, url) => {
      query = url;
      send(ws, ExecChannel.stdout, "hello\n");
      send(ws, ExecChannel.stderr, "warning\n");
      ws.on("message", (data, binary) => {
        const bytes = data as Buffer;
        if (binary && bytes[0] === ExecChannel.stdin) send(ws, ExecChannel.stdout, bytes.subarray(1).toString().toUpperCase());
        else if (!binary && (JSON.parse(bytes.toString()) as ExecControl).type === "eof") control(ws, { type: "exit", exit_code: 3 });
      });
    };
    const { io, out } = fakeIo(["abc", "def"]);
    expect(await runExec(api(), { job: "j_1", argv: ["cat"], tty: false }, io)).toBe(3);
    expect(seenAuth).toBe("Bearer gxu_test");
    expect(query?.pathname).toBe("/v1/jobs/j_1/exec");
    expect(query?.searchParams.getAll("cmd")).toEqual(["cat"]);
    expect(out.stdout).toBe("hello\nABCDEF");
    expect(out.stderr).toBe("warning\n");
  });

  it("resolves 125 for a process that has no exit code of its own (killed)", async () => {
    script = (ws) => control(ws, { type: "exit", exit_code: null });
    expect(await runExec(api(), { job: "j_1", argv: ["sleep", "1d"], tty: false }, fakeIo().io)).toBe(EXIT.noExitCode);
  });

  it("sends the terminal's size when asked and again on each resize", async () => {
    let size = { cols: 80, rows: 24 };
    let onResize: (() => void) | undefined;
    const terminal: ExecIo["terminal"] = {
      size: () => size,
      onResize: (listener) => {
        onResize = listener;
        return () => (onResize = undefined);
      },
    };
    const seen: ExecControl[] = [];
    let opened: URL | undefined;
    script = (ws, url) => {
      opened = url;
      ws.on("message", (data, binary) => {
        if (binary) return;
        const c = JSON.parse(String(data)) as ExecControl;
        seen.push(c);
        if (c.type === "resize") control(ws, { type: "exit", exit_code: 0 });
      });
      // The client listens for resizes once the socket is open: this message comes after.
      send(ws, ExecChannel.stdout, "$ ");
    };
    const { io, out } = fakeIo([], terminal);
    const done = runExec(api(), { job: "j_1", argv: ["sh"], tty: true }, io);
    await expect.poll(() => out.stdout).toBe("$ ");
    size = { cols: 100, rows: 30 };
    onResize!();
    expect(await done).toBe(0);
    expect(opened?.searchParams.get("tty")).toBe("1");
    expect([opened?.searchParams.get("cols"), opened?.searchParams.get("rows")]).toEqual(["80", "24"]);
    expect(seen.filter((c) => c.type === "resize")).toEqual([{ type: "resize", cols: 100, rows: 30 }]);
    expect(onResize).toBeUndefined();
  });

  it("rejects with the server's message on an error control, exiting 1", async () => {
    script = (ws) => control(ws, { type: "error", code: "refused", message: "exec is off in pool gpu" });
    const err = await runExec(api(), { job: "j_1", argv: ["ls"], tty: false }, fakeIo().io).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).message).toBe("the exec in job j_1 failed (refused): exec is off in pool gpu");
    expect((err as CliError).exitCode).toBe(EXIT.error);
  });

  it("rejects when the socket closes before the process's exit", async () => {
    script = (ws) => ws.close(1011, "agent gone");
    await expect(runExec(api(), { job: "j_1", argv: ["ls"], tty: false }, fakeIo().io)).rejects.toThrow(/closed before the process ended \(1011: agent gone\)/);
  });

  it("turns a refused upgrade into the API's error: a 403 exits 3 with the server's message and a hint", async () => {
    refusal = { status: 403, body: { error: { code: "forbidden", message: "exec needs the member role" } } };
    const err = await runExec(api(), { job: "j_1", argv: ["ls"], tty: false }, fakeIo().io).catch((e: unknown) => e);
    expect((err as CliError).exitCode).toBe(EXIT.auth);
    expect((err as CliError).message).toMatch(/^exec needs the member role: exec needs the member role in the job's project/);
    refusal = { status: 409, body: { error: { code: "conflict", message: "job j_1 is not running" } } };
    await expect(runExec(api(), { job: "j_1", argv: ["ls"], tty: false }, fakeIo().io)).rejects.toThrow(/^job j_1 is not running$/);
  });
});

describe("gridx exec and gridx shell", () => {
  async function gridx(argv: string[]) {
    const { io, out } = fakeIo();
    const code = await dispatch(COMMANDS, argv, { ...io, env: { GRIDX_URL: base, GRIDX_TOKEN: "gxu_test" }, signals: process, exit: () => { throw new Error("exit"); } }, "1.0.0");
    return { code, ...out };
  }
  /** Answers with the argv and tty it was asked for, and exits 7. */
  const echoArgs: Script = (ws, url) => {
    send(ws, ExecChannel.stdout, JSON.stringify({ argv: url.searchParams.getAll("cmd"), tty: url.searchParams.get("tty") }));
    control(ws, { type: "exit", exit_code: 7 });
  };

  it("exec runs everything after -- as the argv, flags included, and exits with its code", async () => {
    script = echoArgs;
    const res = await gridx(["exec", "j_1", "-t", "--", "ls", "-l", "--json"]);
    expect(res.code).toBe(7);
    expect(JSON.parse(res.stdout)).toEqual({ argv: ["ls", "-l", "--json"], tty: "1" });
    expect(JSON.parse((await gridx(["exec", "j_1", "--", "true"])).stdout)).toEqual({ argv: ["true"], tty: "0" });
  });

  it("shell asks for a terminal running bash where there is one, else sh", async () => {
    script = echoArgs;
    const res = await gridx(["shell", "j_1"]);
    expect(JSON.parse(res.stdout)).toEqual({ argv: SHELL_ARGV, tty: "1" });
    expect(SHELL_ARGV).toEqual(["/bin/sh", "-c", "command -v bash >/dev/null && exec bash || exec sh"]);
  });
});
