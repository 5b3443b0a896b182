import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { Connection } from "../../agent/src/connection.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { AgentToCoordinator, decodeFrame, encode, type CoordinatorToAgent } from "../../protocol/index.ts";

let closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers = [];
});

const caps = { cpu_cores: 1, memory_mb: 512, gpus: [], nvidia_runtime: false, labels: {}, os: "Linux", arch: "x64", wsl: false, runtimes: ["runc" as const], egress: false, ports: false };
const result = (job_id: string) => ({ type: "job_result" as const, payload: { job_id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });

/** A coordinator stand-in that records each frame's messages and answers hello as told. */
async function coordinator(batchFrames: boolean) {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await once(wss, "listening");
  const frames: AgentToCoordinator[][] = [];
  let socket: WebSocket | null = null;
  wss.on("connection", (ws) => {
    socket = ws;
    ws.on("message", (raw) => {
      const messages = decodeFrame(raw.toString(), AgentToCoordinator).map((d) => {
        if (!d.ok) throw new Error(d.message);
        return d.message;
      });
      frames.push(messages);
      if (messages[0]?.type === "hello") ws.send(encode({ type: "hello_ack", payload: { worker_id: "w", heartbeat_interval_s: 60, draining: false, batch_frames: batchFrames } }));
    });
  });
  closers.push(() => new Promise((r) => wss.close(r)));
  return { url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`, frames, send: (raw: string) => socket!.send(raw), socket: () => socket };
}

async function connect(url: string, onFatal: (reason: string) => void = () => undefined, onDrained?: () => void) {
  const received: CoordinatorToAgent[] = [];
  let ready: () => void;
  const greeted = new Promise<void>((r) => (ready = r));
  const conn = new Connection({
    url,
    token: "t",
    log: silentLogger,
    hello: () => ({ agent_version: "test", name: "n", slots: 2, caps, running: [], warm: { envs: [], repos: [] } }),
    onMessage: (m) => (received.push(m), m.type === "hello_ack" && ready()),
    onFatal,
    onDrained,
  });
  conn.start();
  closers.push(() => conn.close());
  await greeted;
  return { conn, received };
}

const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(check()).toBe(true);
};

describe("agent connection frames", () => {
  it("offers batching in its hello and sends one turn's messages in one frame where the coordinator agrees", async () => {
    const server = await coordinator(true);
    const { conn } = await connect(server.url);
    expect(server.frames[0]).toMatchObject([{ type: "hello", payload: { batch_frames: true } }]);
    conn.send({ type: "job_started", payload: { job_id: "j1", attempt: 1 } });
    conn.send(result("j1"));
    conn.send(result("j2"));
    await until(() => server.frames.length === 2);
    expect(server.frames[1]!.map((m) => m.type)).toEqual(["job_started", "job_result", "job_result"]);
    // The next turn's message is a frame of its own.
    conn.send(result("j3"));
    await until(() => server.frames.length === 3);
    expect(server.frames[2]).toEqual([result("j3")]);
  });

  it("sends one message per frame to a coordinator that does not read batches", async () => {
    const server = await coordinator(false);
    const { conn } = await connect(server.url);
    conn.send(result("j1"));
    conn.send(result("j2"));
    await until(() => server.frames.length === 3);
    expect(server.frames.slice(1)).toEqual([[result("j1")], [result("j2")]]);
  });

  it("hands each message of a batched frame from the coordinator over in order", async () => {
    const server = await coordinator(true);
    const { received } = await connect(server.url);
    server.send(`[${encode({ type: "result_ack", payload: { job_id: "j1", attempt: 1 } })},${encode({ type: "drain", payload: {} })}]`);
    await until(() => received.length === 3);
    expect(received.slice(1).map((m) => m.type)).toEqual(["result_ack", "drain"]);
  });
});

describe("agent connection drain", () => {
  it("counts what it was given as buffered until the socket has written it, then says it drained", async () => {
    const server = await coordinator(true);
    let drains = 0;
    const { conn } = await connect(server.url, undefined, () => drains++);
    // Greeted: it drained once already, with nothing sent.
    await until(() => drains === 1);
    expect([conn.writable, conn.buffered]).toEqual([true, 0]);
    conn.send(result("j1"));
    expect(conn.buffered).toBeGreaterThan(0);
    await until(() => drains === 2);
    expect(conn.buffered).toBe(0);
    await until(() => server.frames.length === 2);
  });
});

describe("agent connection close", () => {
  it("is idempotent: a second call returns the same promise and sends no second close", async () => {
    const server = await coordinator(true);
    const { conn } = await connect(server.url);
    const closes: [number, string][] = [];
    server.socket()!.on("close", (code, reason) => closes.push([code, reason.toString()]));
    const first = conn.close();
    expect(conn.close()).toBe(first);
    await first;
    expect(conn.close()).toBe(first);
    await until(() => closes.length === 1);
    expect(closes).toEqual([[1000, "agent stopping"]]);
  });
});

describe("agent connection refused for good", () => {
  it("gives up, rather than redialing, when its worker name belongs to another agent token (close 4005)", async () => {
    const server = await coordinator(true);
    const fatal: string[] = [];
    await connect(server.url, (reason) => fatal.push(reason));
    server.socket()!.close(4005, "this worker name belongs to another agent token");
    await until(() => fatal.length === 1);
    expect(fatal[0]).toMatch(/another agent token/);
  });
});
