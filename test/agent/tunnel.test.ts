import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { chmodSync, copyFileSync, mkdtempSync } from "node:fs";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { PassThrough } from "node:stream";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket as WsSocket } from "ws";
import {
  AgentToCoordinator,
  AttemptSandbox,
  decodeFrame,
  decodeTunnelFrame,
  encode,
  encodeTunnelFrame,
  FrameType,
  jsonFrame,
  JobLimits,
  JobRequest,
  messageFrame,
  portPath,
  readJson,
  readMessage,
  readWindow,
  SendWindow,
  TUNNEL_LIMITS,
  TunnelEnd,
  TunnelHead,
  TunnelReset,
  windowFrame,
  type TunnelFrame,
  type TunnelOpen,
  type TunnelTarget,
} from "../../protocol/index.ts";
import { Agent } from "../../agent/src/agent.ts";
import { Connection } from "../../agent/src/connection.ts";
import { DockerEngine } from "../../agent/src/docker/engine.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { gridxEnv } from "../../agent/src/runner/docker-runner.ts";
import { jupyterArgv, KINDS, type PrepareContext } from "../../agent/src/runner/kinds.ts";
import type { JobRunner, RunHooks, RunOutcome } from "../../agent/src/runner/runner.ts";
import { containerOptions } from "../../agent/src/runner/sandbox.ts";
import { findRelayBusybox, isStaticElf } from "../../agent/src/tunnel/busybox.ts";
import { admit, AGENT_STREAM_CAP, type OpenAttempt } from "../../agent/src/tunnel/decide.ts";
import { connectFailure, headerArgs, headerPairs } from "../../agent/src/tunnel/handlers.ts";
import { DockerReach, RELAY_BUSYBOX_PATH, type ContainerReach } from "../../agent/src/tunnel/reach.ts";
import { Tunnel } from "../../agent/src/tunnel/tunnel.ts";
import { pollUntil } from "../helpers/poll.ts";

const WINDOW = TUNNEL_LIMITS.window_bytes;
const JOB = "j_tunnel";
const attemptOf = (over: Partial<OpenAttempt> = {}): OpenAttempt => ({ container: "c1", ports: [{ port: 8000 }], exec: true, ...over });
const openOf = (target: TunnelTarget, attempt = 1): TunnelOpen => ({ job_id: JOB, attempt, target });
const get = (port: number, path: string): TunnelTarget => ({ type: "http", port, method: "GET", path, headers: [], body: false });

describe("admit (pure)", () => {
  it("lets a declared port of a running attempt through, and exec where the pool allows it", () => {
    expect(admit(openOf(get(8000, "/")), attemptOf(), 0)).toEqual({ ok: true, attempt: attemptOf() });
    expect(admit(openOf({ type: "exec", argv: ["sh"], tty: true }), attemptOf(), 0).ok).toBe(true);
  });

  it("refuses an attempt not held, an undeclared port, exec switched off, and past the stream cap", () => {
    expect(admit(openOf(get(8000, "/")), undefined, 0)).toMatchObject({ ok: false, code: "refused", message: `attempt 1 of job ${JOB} is not running on this agent` });
    expect(admit(openOf(get(9999, "/")), attemptOf(), 0)).toMatchObject({ ok: false, code: "refused", message: "port 9999 is not one the job declared" });
    expect(admit(openOf({ type: "ws", port: 9999, path: "/", headers: [], protocols: [] }), attemptOf(), 0)).toMatchObject({ ok: false, code: "refused" });
    expect(admit(openOf({ type: "exec", argv: ["sh"], tty: false }), attemptOf({ exec: false }), 0)).toMatchObject({ ok: false, code: "refused", message: "the pool does not allow exec into its jobs" });
    expect(AGENT_STREAM_CAP).toBe(256);
    expect(admit(openOf(get(8000, "/")), attemptOf(), 256)).toMatchObject({ ok: false, code: "limit" });
    expect(admit(openOf(get(8000, "/")), attemptOf(), 3, 3)).toMatchObject({ ok: false, code: "limit", message: "this agent has 3 streams open, its most" });
  });
});

describe("headers and failures (pure)", () => {
  it("drops hop-by-hop headers both ways", () => {
    expect(headerArgs([["Host", "x"], ["Connection", "keep-alive"], ["Transfer-Encoding", "chunked"], ["accept", "*/*"]], new Set(["connection", "transfer-encoding"]))).toEqual(["Host", "x", "accept", "*/*"]);
    expect(headerPairs(["Content-Type", "text/plain", "Connection", "close", "Keep-Alive", "timeout=5", "Set-Cookie", "a=1", "Set-Cookie", "b=2"])).toEqual([
      ["Content-Type", "text/plain"],
      ["Set-Cookie", "a=1"],
      ["Set-Cookie", "b=2"],
    ]);
  });

  it("calls a refused connection unreachable and anything else an error", () => {
    expect(connectFailure(Object.assign(new Error("x"), { code: "ECONNREFUSED" }), 8001)).toEqual({ code: "unreachable", message: "nothing listens on port 8001 yet" });
    expect(connectFailure(new Error("socket hang up"), 8001)).toEqual({ code: "error", message: "port 8001: socket hang up" });
  });
});

describe("relay busybox", () => {
  it("takes a statically linked busybox and refuses a dynamically linked binary", async () => {
    expect(await isStaticElf("/bin/busybox")).toBe(true);
    expect(await isStaticElf(process.execPath)).toBe(false);
    expect(await isStaticElf("/no/such/file")).toBe(false);
    expect(await findRelayBusybox(undefined)).toEqual({ path: "/bin/busybox" });
    const none = await findRelayBusybox(process.execPath);
    expect(none.path).toBeNull();
    expect(none.path === null && none.why).toContain("busybox-static");
  });

  it("is mounted read-only into a container given it, and nowhere else", () => {
    const base = { name: "n", image: "i", argv: null, env: {}, limits: JobLimits.parse({}), gpuIndices: [], inputDir: "/in", outputDir: "/out", codeDir: null, tmpfsMb: 64, labels: {}, runtime: "runc" as const };
    expect(containerOptions({ ...base, relayBusybox: "/bin/busybox" }).HostConfig?.Binds).toContain(`/bin/busybox:${RELAY_BUSYBOX_PATH}:ro`);
    expect(containerOptions(base).HostConfig?.Binds!.some((b) => b.includes(RELAY_BUSYBOX_PATH))).toBe(false);
    expect(containerOptions({ ...base, relayBusybox: "/bin/busybox" }).HostConfig?.NetworkMode).toBe("none");
  });
});

describe("jupyter and port paths (pure)", () => {
  it("serves Jupyter on loopback under the port's public path, without a token", () => {
    const argv = jupyterArgv("j_1", false);
    expect(argv.slice(0, 5)).toEqual(["jupyter", "notebook", "--ip=127.0.0.1", "--port=8888", "--no-browser"]);
    expect(argv).toContain("--NotebookApp.base_url=/v1/jobs/j_1/ports/8888/");
    expect(argv).toContain("--NotebookApp.token=");
    expect(jupyterArgv("j_1", true).slice(0, 2)).toEqual(["jupyter", "lab"]);
    expect(jupyterArgv("j_1", true)).toContain("--ServerApp.notebook_dir=/work/output");
  });

  it("tells a job with ports where each is served", () => {
    const env = gridxEnv({ jobId: "j_1", attempt: 1, spec: { array: null, ports: [{ port: 8000, protocol: "http", strip_prefix: true, idle_timeout_s: 3600 }] } });
    expect(env.GRIDX_PORT_8000_PATH).toBe(portPath("j_1", 8000));
    expect(Object.keys(gridxEnv({ jobId: "j_1", attempt: 1, spec: { array: null } })).some((k) => k.startsWith("GRIDX_PORT_"))).toBe(false);
  });
});

/** What the coordinator saw of one stream. */
interface Seen {
  head?: TunnelHead;
  data: Buffer[];
  stderr: Buffer[];
  messages: { bytes: Buffer; binary: boolean }[];
  end?: TunnelEnd;
  reset?: TunnelReset;
  /** Credited bytes sent by the agent and not yet granted back. */
  unacked: number;
  maxUnacked: number;
  /** The coordinator's credit toward the agent. */
  credit: SendWindow;
  done: Promise<void>;
  settle: () => void;
}

/**
 * A coordinator in miniature: sends frames to a Tunnel, keeps what came back per stream,
 * grants credit as it reads (unless told to hold it), and spends its own credit toward the agent.
 */
class FakeCoordinator {
  readonly streams = new Map<number, Seen>();
  readonly tunnel: Tunnel;
  private nextId = 1;
  /** Streams whose credit is not granted back until `release`. */
  readonly holding = new Set<number>();
  private partial = new Map<number, Buffer[]>();

  constructor(attempts: Map<string, OpenAttempt>, reach: ContainerReach | null) {
    this.tunnel = new Tunnel({ send: (f) => this.fromAgent(f), attempt: (job, attempt) => attempts.get(`${job}#${attempt}`), reach, log: silentLogger });
  }

  open(target: TunnelTarget, attempt = 1): number {
    const id = this.nextId++;
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    this.streams.set(id, { data: [], stderr: [], messages: [], unacked: 0, maxUnacked: 0, credit: new SendWindow(), done, settle });
    this.tunnel.receive(jsonFrame(FrameType.open, id, openOf(target, attempt)));
    return id;
  }

  seen(id: number): Seen {
    return this.streams.get(id)!;
  }

  /** Sends bytes as data frames within the agent's credit. */
  async send(id: number, bytes: Buffer): Promise<void> {
    for (let at = 0; at < bytes.length; at += TUNNEL_LIMITS.chunk_bytes) {
      const piece = bytes.subarray(at, at + TUNNEL_LIMITS.chunk_bytes);
      await this.seen(id).credit.take(piece.length);
      this.tunnel.receive(encodeTunnelFrame(FrameType.data, id, piece));
    }
  }

  frame(type: FrameType, id: number, body: unknown): void {
    this.tunnel.receive(jsonFrame(type, id, body));
  }

  release(id: number): void {
    this.holding.delete(id);
    this.grant(id);
  }

  private grant(id: number): void {
    const s = this.seen(id);
    if (s.unacked > 0) this.tunnel.receive(windowFrame(id, s.unacked));
    s.unacked = 0;
  }

  private fromAgent(raw: Uint8Array): void {
    const f = decodeTunnelFrame(raw)!;
    const s = this.streams.get(f.stream);
    if (!s) return;
    const bytes = Buffer.from(f.payload);
    if (f.type === FrameType.data || f.type === FrameType.stderr || f.type === FrameType.message) {
      s.unacked += f.payload.byteLength;
      s.maxUnacked = Math.max(s.maxUnacked, s.unacked);
    }
    switch (f.type) {
      case FrameType.head:
        s.head = readJson(f.payload, TunnelHead)!;
        break;
      case FrameType.data:
        s.data.push(bytes);
        break;
      case FrameType.stderr:
        s.stderr.push(bytes);
        break;
      case FrameType.message: {
        const m = readMessage(f.payload)!;
        const parts = [...(this.partial.get(f.stream) ?? []), Buffer.from(m.bytes)];
        if (m.final) {
          s.messages.push({ bytes: Buffer.concat(parts), binary: m.binary });
          this.partial.delete(f.stream);
        } else this.partial.set(f.stream, parts);
        break;
      }
      case FrameType.window:
        s.credit.grant(readWindow(f.payload)!);
        break;
      case FrameType.end:
        s.end = readJson(f.payload, TunnelEnd)!;
        s.settle();
        break;
      case FrameType.reset:
        s.reset = readJson(f.payload, TunnelReset)!;
        s.settle();
        break;
    }
    // Granted on the next turn, as a reader that has taken the bytes would.
    if (!this.holding.has(f.stream) && s.unacked > 0) setImmediate(() => this.holding.has(f.stream) || this.grant(f.stream));
  }
}

const body = (s: Seen) => Buffer.concat(s.data);

describe("Tunnel frames without a container", () => {
  it("refuses an open for an attempt it does not run, a port not declared, and exec switched off", async () => {
    const fake = new FakeCoordinator(new Map([[`${JOB}#1`, attemptOf({ exec: false })]]), null);
    const notHeld = fake.open(get(8000, "/"), 2);
    const undeclared = fake.open(get(9999, "/"));
    const exec = fake.open({ type: "exec", argv: ["id"], tty: false });
    expect(fake.seen(notHeld).reset).toEqual({ code: "refused", message: `attempt 2 of job ${JOB} is not running on this agent` });
    expect(fake.seen(undeclared).reset).toEqual({ code: "refused", message: "port 9999 is not one the job declared" });
    expect(fake.seen(exec).reset?.code).toBe("refused");
    expect(fake.tunnel.openStreams).toBe(0);
  });

  it("drops frames that do not parse and frames of unknown streams without throwing", () => {
    const fake = new FakeCoordinator(new Map(), null);
    expect(() => fake.tunnel.receive(new Uint8Array([1, 2]))).not.toThrow();
    expect(() => fake.tunnel.receive(encodeTunnelFrame(FrameType.data, 77, new Uint8Array(10)))).not.toThrow();
    expect(() => fake.tunnel.receive(encodeTunnelFrame(FrameType.open, 5, new TextEncoder().encode("{not json")))).not.toThrow();
    expect(fake.tunnel.openStreams).toBe(0);
  });
});

describe("Tunnel into a real container (Docker)", () => {
  const docker = new DockerEngine();
  const name = `gridx-tunnel-test-${randomBytes(4).toString("hex")}`;
  const attempts = new Map<string, OpenAttempt>();
  let container = "";
  let fake: FakeCoordinator;

  beforeAll(async () => {
    const input = mkdtempSync(join(tmpdir(), "gridx-tunnel-in-"));
    const output = mkdtempSync(join(tmpdir(), "gridx-tunnel-out-"));
    chmodSync(input, 0o755);
    chmodSync(output, 0o777);
    copyFileSync(join(import.meta.dirname, "../support/port-server.py"), join(input, "port-server.py"));
    chmodSync(join(input, "port-server.py"), 0o644);
    // The job's own sandbox: read-only root, no capabilities, NetworkMode none, the job user.
    const options = containerOptions({
      name,
      image: "gridx/python:latest",
      argv: ["python3", "/work/input/port-server.py", "8000"],
      env: {},
      limits: JobLimits.parse({}),
      gpuIndices: [],
      inputDir: input,
      outputDir: output,
      codeDir: null,
      tmpfsMb: 64,
      labels: { "gridx.test": "tunnel" },
      runtime: "runc",
      relayBusybox: "/bin/busybox",
    });
    container = await docker.createContainer(options);
    await docker.startContainer(container);
    attempts.set(`${JOB}#1`, { container, ports: [{ port: 8000 }, { port: 8001 }], exec: AttemptSandbox.parse({}).exec });
    fake = new FakeCoordinator(attempts, new DockerReach(docker));
    await pollUntil(
      async () => {
        const id = fake.open(get(8000, "/hello"));
        await fake.seen(id).done;
        return fake.seen(id).reset?.code ?? "answered";
      },
      (code) => code === "answered",
      { timeoutMs: 30_000, intervalMs: 100, what: "the job's server" },
    );
  }, 60_000);

  afterAll(async () => {
    if (container) await docker.removeContainer(container).catch(() => {});
  });

  it("relays a GET and a POST whose body comes back", async () => {
    const hello = fake.open(get(8000, "/hello?x=1"));
    await fake.seen(hello).done;
    expect(fake.seen(hello).head?.status).toBe(200);
    expect(body(fake.seen(hello)).toString()).toContain("path=/hello?x=1");
    expect(fake.seen(hello).end).toEqual({});

    // Larger than a window both ways, so the agent's credit toward us is spent and handed back.
    const sent = randomBytes(WINDOW * 2 + 1234);
    const post = fake.open({ type: "http", port: 8000, method: "POST", path: "/echo", headers: [["content-length", String(sent.length)]], body: true });
    await fake.send(post, sent);
    fake.frame(FrameType.end, post, {});
    await fake.seen(post).done;
    expect(fake.seen(post).head?.status).toBe(200);
    expect(body(fake.seen(post)).equals(sent)).toBe(true);
  });

  it("never has more than a window of a stream unacknowledged", async () => {
    const big = fake.open(get(8000, "/big?mib=2"));
    fake.holding.add(big);
    // The agent may fill the window and must then wait: nothing granted, nothing more comes.
    await pollUntil(async () => fake.seen(big).unacked, (n) => n > WINDOW - TUNNEL_LIMITS.chunk_bytes, { timeoutMs: 20_000, intervalMs: 20, what: "a window's worth of data" });
    await new Promise((r) => setTimeout(r, 300));
    expect(fake.seen(big).unacked).toBeLessThanOrEqual(WINDOW);
    fake.release(big);
    await fake.seen(big).done;
    const got = body(fake.seen(big));
    expect(got.length).toBe(2 * 1024 * 1024);
    expect(got.subarray(0, 512).equals(Buffer.from([...Array(256).keys(), ...Array(256).keys()]))).toBe(true);
    expect(fake.seen(big).maxUnacked).toBeLessThanOrEqual(WINDOW);
  });

  it("relays a WebSocket: accepted with 101, messages echoed (one larger than a frame), closed with its code", async () => {
    const ws = fake.open({ type: "ws", port: 8000, path: "/ws", headers: [], protocols: [] });
    await pollUntil(async () => fake.seen(ws).head ?? fake.seen(ws).reset, Boolean, { timeoutMs: 10_000, intervalMs: 10, what: "the WebSocket's head" });
    expect(fake.seen(ws).head?.status).toBe(101);
    fake.tunnel.receive(messageFrame(ws, new TextEncoder().encode("hello"), false, true));
    const large = randomBytes(TUNNEL_LIMITS.chunk_bytes + 5000);
    fake.tunnel.receive(messageFrame(ws, large.subarray(0, TUNNEL_LIMITS.chunk_bytes), true, false));
    fake.tunnel.receive(messageFrame(ws, large.subarray(TUNNEL_LIMITS.chunk_bytes), true, true));
    await pollUntil(async () => fake.seen(ws).messages.length, (n) => n >= 2, { timeoutMs: 10_000, intervalMs: 10, what: "two echoed messages" });
    expect(fake.seen(ws).messages[0]).toEqual({ bytes: Buffer.from("hello"), binary: false });
    expect(fake.seen(ws).messages[1]!.binary).toBe(true);
    expect(fake.seen(ws).messages[1]!.bytes.equals(large)).toBe(true);
    fake.frame(FrameType.end, ws, { code: 1000, reason: "bye" });
    await fake.seen(ws).done;
    expect(fake.seen(ws).end?.code).toBe(1000);
  });

  it("closes a WebSocket normally when told a code no close frame may carry", async () => {
    const ws = fake.open({ type: "ws", port: 8000, path: "/ws", headers: [], protocols: [] });
    await pollUntil(async () => fake.seen(ws).head ?? fake.seen(ws).reset, Boolean, { timeoutMs: 10_000, intervalMs: 10, what: "the WebSocket's head" });
    fake.frame(FrameType.end, ws, { code: 1006 });
    await fake.seen(ws).done;
    expect(fake.seen(ws).end?.code).toBe(1000);
  });

  it("runs a process as the job's user: stdout, stderr, stdin and its exit code", async () => {
    const id = fake.open({ type: "exec", argv: ["sh", "-c", "id -u; echo oops >&2; exit 3"], tty: false });
    await fake.seen(id).done;
    expect(fake.seen(id).head?.status).toBe(0);
    expect(body(fake.seen(id)).toString()).toBe("1000\n");
    expect(Buffer.concat(fake.seen(id).stderr).toString()).toBe("oops\n");
    expect(fake.seen(id).end).toEqual({ exit_code: 3 });

    const cat = fake.open({ type: "exec", argv: ["cat"], tty: false });
    await fake.send(cat, Buffer.from("typed in\n"));
    fake.frame(FrameType.end, cat, {});
    await fake.seen(cat).done;
    expect(body(fake.seen(cat)).toString()).toBe("typed in\n");
    expect(fake.seen(cat).end).toEqual({ exit_code: 0 });
  });

  it("gives a TTY exec its terminal size, and a resize changes it", async () => {
    // The engine starts the process before it can size its terminal; the head comes once it is sized.
    const id = fake.open({ type: "exec", argv: ["sh", "-c", "read x; stty size; read y; stty size"], tty: true, cols: 100, rows: 30 });
    await pollUntil(async () => fake.seen(id).head, Boolean, { timeoutMs: 10_000, intervalMs: 10, what: "the exec's head" });
    await fake.send(id, Buffer.from("a\n"));
    await pollUntil(async () => body(fake.seen(id)).toString(), (t) => t.includes("30 100"), { timeoutMs: 10_000, intervalMs: 10, what: "the first size" });
    // Stdin after a resize reaches the terminal once it has its new size.
    fake.frame(FrameType.resize, id, { cols: 120, rows: 40 });
    await fake.send(id, Buffer.from("go\n"));
    await fake.seen(id).done;
    expect(body(fake.seen(id)).toString()).toContain("40 120");
    expect(fake.seen(id).end).toEqual({ exit_code: 0 });
  });

  it("says unreachable when nothing listens on a declared port", async () => {
    const id = fake.open(get(8001, "/"));
    await fake.seen(id).done;
    expect(fake.seen(id).reset).toEqual({ code: "unreachable", message: "nothing listens on port 8001 yet" });
  });

  it("leaves the container without a network", async () => {
    const id = fake.open(get(8000, "/net"));
    await fake.seen(id).done;
    expect(body(fake.seen(id)).toString()).toBe("isolated");
  });

  it("resets an attempt's open streams with gone when it ends, and refuses it afterwards", async () => {
    const waiting = fake.open(get(8000, "/stream"));
    await pollUntil(async () => body(fake.seen(waiting)).toString(), (t) => t.includes("first"), { timeoutMs: 10_000, intervalMs: 10, what: "the first chunk" });
    const held = attempts.get(`${JOB}#1`)!;
    attempts.delete(`${JOB}#1`);
    fake.tunnel.attemptEnded(JOB, 1, held.container);
    expect(fake.seen(waiting).reset).toEqual({ code: "gone", message: "the job ended" });
    expect(fake.tunnel.openStreams).toBe(0);
    const late = fake.open(get(8000, "/release"));
    expect(fake.seen(late).reset?.code).toBe("refused");
    attempts.set(`${JOB}#1`, held);
    const release = fake.open(get(8000, "/release"));
    await fake.seen(release).done;
    expect(fake.seen(release).head?.status).toBe(200);
  });
});

describe("the jupyter kind through the tunnel (Docker, gridx/jupyter)", () => {
  const docker = new DockerEngine();
  let container = "";

  afterAll(async () => {
    if (container) await docker.removeContainer(container).catch(() => {});
  });

  it("serves the Notebook under the port's public path, with HOME and GRIDX_PORT_8888_PATH set", async () => {
    const prepared = await KINDS.jupyter.prepare({ kind: "jupyter", jupyter: { lab: false } }, { jobId: JOB, images: { python: "gridx/python:latest", jupyter: "gridx/jupyter:latest" } } as PrepareContext);
    const output = mkdtempSync(join(tmpdir(), "gridx-tunnel-nb-"));
    chmodSync(output, 0o777);
    const env = { ...prepared.env, ...gridxEnv({ jobId: JOB, attempt: 1, spec: { array: null, ports: [{ port: 8888, protocol: "http", strip_prefix: false, idle_timeout_s: 3600 }] } }) };
    container = await docker.createContainer(
      containerOptions({
        name: `gridx-tunnel-nb-${randomBytes(4).toString("hex")}`,
        image: prepared.image,
        argv: prepared.argv,
        env,
        limits: JobLimits.parse({}),
        gpuIndices: [],
        inputDir: mkdtempSync(join(tmpdir(), "gridx-tunnel-nbin-")),
        outputDir: output,
        codeDir: null,
        tmpfsMb: 64,
        labels: { "gridx.test": "tunnel" },
        runtime: "runc",
        relayBusybox: "/bin/busybox",
      }),
    );
    await docker.startContainer(container);
    const fake = new FakeCoordinator(new Map([[`${JOB}#1`, { container, ports: [{ port: 8888 }], exec: true }]]), new DockerReach(docker));
    // Not stripped: the server sees the whole public path, which is its base URL.
    const api = await pollUntil(
      async () => {
        const id = fake.open(get(8888, `${portPath(JOB, 8888)}api`));
        await fake.seen(id).done;
        return fake.seen(id);
      },
      (s) => s.head?.status === 200,
      { timeoutMs: 60_000, intervalMs: 250, what: "the Notebook's API" },
    );
    expect(JSON.parse(body(api).toString())).toHaveProperty("version");
    const exec = fake.open({ type: "exec", argv: ["sh", "-c", 'echo "$HOME $GRIDX_PORT_8888_PATH"'], tty: false });
    await fake.seen(exec).done;
    expect(body(fake.seen(exec)).toString()).toBe(`/tmp ${portPath(JOB, 8888)}\n`);
  }, 90_000);
});

describe("Connection binary frames", () => {
  it("hands the coordinator's binary frames to onBinary and sends the tunnel's as binary", async () => {
    const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await once(wss, "listening");
    const fromAgent: { binary: boolean; bytes: Buffer }[] = [];
    let peer: WsSocket | null = null;
    wss.on("connection", (ws) => {
      peer = ws;
      ws.on("message", (raw: Buffer, binary: boolean) => {
        if (binary) fromAgent.push({ binary, bytes: raw });
        else if (raw.toString().includes('"hello"')) ws.send(encode({ type: "hello_ack", payload: { worker_id: "w", heartbeat_interval_s: 60, draining: false, batch_frames: true } }));
      });
    });
    const got: Uint8Array[] = [];
    let disconnected = 0;
    let greeted!: () => void;
    const ready = new Promise<void>((r) => (greeted = r));
    const caps = { cpu_cores: 1, memory_mb: 512, gpus: [], nvidia_runtime: false, labels: {}, os: "Linux", arch: "x64", wsl: false, runtimes: ["runc" as const], egress: false, ports: true };
    const conn = new Connection({
      url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`,
      token: "t",
      log: silentLogger,
      hello: () => ({ agent_version: "test", name: "n", slots: 1, caps, running: [], warm: { envs: [], repos: [] } }),
      onMessage: (m) => m.type === "hello_ack" && greeted(),
      onFatal: () => {},
      onBinary: (frame) => got.push(frame),
      onDisconnected: () => disconnected++,
      backoff: { baseMs: 60_000, maxMs: 60_000 },
    });
    try {
      conn.start();
      await ready;
      const frame = windowFrame(3, 1234);
      peer!.send(frame, { binary: true });
      conn.sendBinary(encodeTunnelFrame(FrameType.data, 3, new Uint8Array([1, 2, 3])));
      await pollUntil(async () => got.length + fromAgent.length, (n) => n >= 2, { timeoutMs: 5000, intervalMs: 10, what: "a frame each way" });
      expect(Buffer.from(got[0]!).equals(Buffer.from(frame))).toBe(true);
      expect(decodeTunnelFrame(fromAgent[0]!.bytes)).toMatchObject({ type: FrameType.data, stream: 3 });
      peer!.terminate();
      await pollUntil(async () => disconnected, (n) => n === 1, { timeoutMs: 5000, intervalMs: 10, what: "the disconnect" });
      // A closed socket drops a frame rather than throw.
      expect(() => conn.sendBinary(encodeTunnelFrame(FrameType.data, 3, new Uint8Array([4])))).not.toThrow();
    } finally {
      await conn.close();
      await new Promise((r) => wss.close(r));
    }
  });
});

describe("Agent wiring", () => {
  it("lets the tunnel reach an attempt's container from its start to its exit, and refuses it either side", async () => {
    const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await once(wss, "listening");
    const frames: TunnelFrame[] = [];
    let peer: WsSocket | null = null;
    let greeted!: () => void;
    const ready = new Promise<void>((r) => (greeted = r));
    wss.on("connection", (ws) => {
      peer = ws;
      ws.on("message", (raw: Buffer, binary: boolean) => {
        if (binary) frames.push(decodeTunnelFrame(raw)!);
        else
          for (const d of decodeFrame(raw.toString(), AgentToCoordinator)) {
            if (!d.ok) continue;
            if (d.message.type === "hello") {
              ws.send(encode({ type: "hello_ack", payload: { worker_id: "w", heartbeat_interval_s: 60, draining: false, batch_frames: false } }));
              greeted();
            }
            if (d.message.type === "job_result") ws.send(encode({ type: "result_ack", payload: { job_id: d.message.payload.job_id, attempt: d.message.payload.attempt } }));
          }
      });
    });
    // A reach whose processes print their argv and exit 0.
    const execs: string[] = [];
    const reach: ContainerReach = {
      exec: async (container, argv) => {
        execs.push(container);
        const stdout = new PassThrough();
        const stderr = new PassThrough();
        stdout.end(argv.join(" "));
        stderr.end();
        return { io: { stdin: new PassThrough() as unknown as Socket, stdout, stderr }, resize: async () => {}, exitCode: async () => 0 };
      },
      agent: () => {
        throw new Error("no ports in this test");
      },
      forget: () => {},
    };
    let hooks: RunHooks | null = null;
    let finish!: (o: RunOutcome) => void;
    const runner: JobRunner = {
      run: (_req, h) => new Promise((r) => ((hooks = h), (finish = r))),
      cleanupLeftovers: async () => 0,
      start: () => undefined,
      close: async () => undefined,
      missingImages: async () => [],
      warm: async () => ({ envs: [], repos: [] }),
    };
    const caps = { cpu_cores: 1, memory_mb: 512, gpus: [], nvidia_runtime: false, labels: {}, os: "Linux", arch: "x64", wsl: false, runtimes: ["runc" as const], egress: false, ports: true };
    const agent = new Agent({ url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`, token: "t", name: "n", slots: 1, version: "t", caps, reach }, runner, silentLogger);
    const resetOf = (stream: number) => frames.find((f) => f.stream === stream && f.type === FrameType.reset);
    const endOf = (stream: number) => frames.find((f) => f.stream === stream && f.type === FrameType.end);
    const exec = { type: "exec" as const, argv: ["echo", "hi"], tty: false };
    try {
      await agent.start();
      await ready;
      peer!.send(encode({ type: "assign_job", payload: { job_id: JOB, attempt: 1, spec: JobRequest.parse({ kind: "python", python: { script: "print(1)" } }), gpu_indices: [], inputs: [] } }));
      await pollUntil(async () => hooks, Boolean, { timeoutMs: 5000, intervalMs: 10, what: "the run" });
      peer!.send(jsonFrame(FrameType.open, 1, openOf(exec)), { binary: true });
      await pollUntil(async () => resetOf(1), Boolean, { timeoutMs: 5000, intervalMs: 10, what: "the refusal before the start" });
      expect(readJson(resetOf(1)!.payload, TunnelReset)?.code).toBe("refused");

      hooks!.reachable!("c-started");
      peer!.send(jsonFrame(FrameType.open, 2, openOf(exec)), { binary: true });
      await pollUntil(async () => endOf(2), Boolean, { timeoutMs: 5000, intervalMs: 10, what: "the exec's end" });
      expect(execs).toEqual(["c-started"]);
      expect(Buffer.concat(frames.filter((f) => f.stream === 2 && f.type === FrameType.data).map((f) => f.payload)).toString()).toBe("echo hi");
      expect(readJson(endOf(2)!.payload, TunnelEnd)).toEqual({ exit_code: 0 });

      hooks!.exited!();
      peer!.send(jsonFrame(FrameType.open, 3, openOf(exec)), { binary: true });
      await pollUntil(async () => resetOf(3), Boolean, { timeoutMs: 5000, intervalMs: 10, what: "the refusal after the exit" });
      expect(readJson(resetOf(3)!.payload, TunnelReset)?.code).toBe("refused");
      finish({ exit_code: 0, failure_reason: null, message: null });
    } finally {
      await agent.close(0);
      await new Promise((r) => wss.close(r));
    }
  });
});
