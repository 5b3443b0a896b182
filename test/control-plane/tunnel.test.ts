import { createExecutionContext, env, SELF, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import {
  decodeTunnelFrame,
  encodeTunnelFrame,
  FrameType,
  HEARTBEAT_FRAME,
  jsonFrame,
  messageFrame,
  readJson,
  readMessage,
  readWindow,
  TUNNEL_LIMITS,
  TunnelEnd,
  TunnelOpen,
  TunnelReset,
  type TunnelFrame,
} from "../../protocol/index.ts";
import { sha256Hex } from "../../control-plane/src/auth/tokens.ts";
import { ByteBucket } from "../../control-plane/src/coordinator/byte-bucket.ts";
import { TunnelHub } from "../../control-plane/src/coordinator/tunnel-hub.ts";
import worker from "../../control-plane/src/index.ts";
import { ADMIN, agentToken, api, caps, FakeAgent, newProject, submit, uniquePool, userToken, waitForJob } from "./helpers.ts";

const BASE = "http://gridx.test";
const PORT = 8080;
const text = new TextEncoder();
const untext = new TextDecoder();

/** The agent's side of the tunnel on a FakeAgent: the frames it got, waited for by type. */
class Peer {
  private frames: TunnelFrame[] = [];
  private waiters: { match: (f: TunnelFrame) => boolean; resolve: (f: TunnelFrame) => void }[] = [];

  constructor(readonly agent: FakeAgent) {
    agent.onBinary = (bytes) => {
      const f = decodeTunnelFrame(bytes);
      if (!f) throw new Error(`the coordinator sent a bad tunnel frame: ${bytes.byteLength} ${[...bytes.subarray(0, 12)]}`);
      const w = this.waiters.findIndex((x) => x.match(f));
      if (w >= 0) this.waiters.splice(w, 1)[0]!.resolve(f);
      else this.frames.push(f);
    };
  }

  /** The next frame of one of these types (on `stream`, when given). */
  next(types: FrameType | FrameType[], stream?: number, timeoutMs = 3000): Promise<TunnelFrame> {
    const wanted = ([] as FrameType[]).concat(types);
    const match = (f: TunnelFrame) => wanted.includes(f.type) && (stream === undefined || f.stream === stream);
    const i = this.frames.findIndex(match);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no frame of type ${wanted.join("|")} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ match, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  async open(): Promise<{ stream: number; open: TunnelOpen }> {
    const f = await this.next(FrameType.open);
    return { stream: f.stream, open: readJson(f.payload, TunnelOpen)! };
  }

  send(frame: Uint8Array) {
    this.agent.sendRaw(frame);
  }

  head(stream: number, status: number, headers: [string, string][] = []) {
    this.send(jsonFrame(FrameType.head, stream, { status, headers }));
  }

  data(stream: number, body: string, type: FrameType = FrameType.data) {
    this.send(encodeTunnelFrame(type, stream, text.encode(body)));
  }

  end(stream: number, body: object = {}) {
    this.send(jsonFrame(FrameType.end, stream, body));
  }

  /** Every data frame up to the stream's end, as text. */
  async body(stream: number): Promise<string> {
    let out = "";
    for (;;) {
      const f = await this.next([FrameType.data, FrameType.end], stream);
      if (f.type === FrameType.end) return out;
      out += untext.decode(f.payload);
    }
  }
}

const heartbeats: ReturnType<typeof setInterval>[] = [];
afterEach(() => {
  for (const h of heartbeats.splice(0)) clearInterval(h);
});

/** A worker (kept alive by heartbeats: the test timeout is short) running a job that declares PORT. */
async function running(body: Record<string, unknown> = {}) {
  const pool = uniquePool();
  const { agent, workerId } = await FakeAgent.join(await agentToken(pool));
  heartbeats.push(setInterval(() => agent.sendRaw(HEARTBEAT_FRAME), 300));
  const job = (await submit({ pool, ports: [{ port: PORT }], ...body })).json;
  await agent.next("assign_job");
  agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
  await waitForJob(job.id, (j) => j.status === "running");
  return { pool, agent, workerId, id: job.id as string, peer: new Peer(agent), path: `/v1/jobs/${job.id}/ports/${PORT}/` };
}

/** A WebSocket through the control plane, accepted. */
async function upgrade(path: string, token: string | null = ADMIN): Promise<{ res: Response; ws: WebSocket; inbox: (string | ArrayBuffer)[]; closed: Promise<CloseEvent> }> {
  const headers: Record<string, string> = { upgrade: "websocket" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await SELF.fetch(BASE + path, { headers });
  if (!res.webSocket) throw new Error(`no WebSocket: ${res.status} ${await res.text()}`);
  const ws = res.webSocket;
  const inbox: (string | ArrayBuffer)[] = [];
  ws.binaryType = "arraybuffer";
  ws.addEventListener("message", (ev) => inbox.push(ev.data));
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  ws.accept();
  return { res, ws, inbox, closed };
}

async function until(pred: () => boolean, what: string, timeoutMs = 3000) {
  const start = Date.now();
  while (!pred()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("tunnel: HTTP through a job's port", () => {
  it("relays a GET with its path and query, without the caller's token, and the server's answer", async () => {
    const { peer, path } = await running();
    const answer = api(`${path}notebooks/a.ipynb?x=1`, { headers: { cookie: "gridx_port=secret; _xsrf=abc", "x-custom": "yes" } });
    const { stream, open } = await peer.open();
    expect(open.target).toMatchObject({ type: "http", port: PORT, method: "GET", path: "/notebooks/a.ipynb?x=1", body: false });
    const headers = open.target.type === "http" ? Object.fromEntries(open.target.headers) : {};
    expect(headers).toMatchObject({ "x-custom": "yes", cookie: "_xsrf=abc" });
    expect(headers.authorization).toBeUndefined();
    peer.head(stream, 200, [["content-type", "text/plain"], ["x-server", "jupyter"]]);
    peer.data(stream, "hello ");
    peer.data(stream, "world");
    peer.end(stream);
    const res = await answer;
    expect([res.status, res.text, res.headers.get("x-server")]).toEqual([200, "hello world", "jupyter"]);
    // Not for the edge to compress (and so hold back) a streamed answer.
    expect(res.headers.get("content-encoding")).toBe("identity");
  });

  it("gives the server its port's root as / with strip_prefix, and the full path without", async () => {
    const stripped = await running();
    let answer = api(stripped.path);
    let { stream, open } = await stripped.peer.open();
    expect(open.target).toMatchObject({ path: "/" });
    stripped.peer.head(stream, 204);
    stripped.peer.end(stream);
    expect((await answer).status).toBe(204);
    const full = await running({ ports: [{ port: PORT, strip_prefix: false }] });
    answer = api(`${full.path}tree?a=b`);
    ({ stream, open } = await full.peer.open());
    expect(open.target).toMatchObject({ path: `${full.path}tree?a=b` });
    full.peer.head(stream, 204);
    full.peer.end(stream);
    expect((await answer).status).toBe(204);
  });

  it("sends a POST's body as data frames, then end", async () => {
    const { peer, path } = await running();
    const answer = api(`${path}api`, { method: "POST", json: { a: 1 } });
    const { stream, open } = await peer.open();
    expect(open.target).toMatchObject({ method: "POST", path: "/api", body: true });
    expect(await peer.body(stream)).toBe('{"a":1}');
    peer.head(stream, 201);
    peer.end(stream);
    expect((await answer).status).toBe(201);
  });

  it("streams a body larger than a window as the agent is granted credit", async () => {
    const { peer, path } = await running();
    const answer = api(path);
    const { stream } = await peer.open();
    peer.head(stream, 200);
    const chunk = new Uint8Array(TUNNEL_LIMITS.chunk_bytes).fill(97);
    const total = 4 * TUNNEL_LIMITS.window_bytes;
    let credit = TUNNEL_LIMITS.window_bytes;
    let granted = 0;
    for (let sent = 0; sent < total; sent += chunk.byteLength) {
      // The agent sends only within its credit, as a real one does.
      while (credit < chunk.byteLength) {
        const bytes = readWindow((await peer.next(FrameType.window, stream)).payload)!;
        credit += bytes;
        granted += bytes;
      }
      peer.send(encodeTunnelFrame(FrameType.data, stream, chunk));
      credit -= chunk.byteLength;
    }
    peer.end(stream);
    const res = await answer;
    expect([res.status, res.text.length]).toEqual([200, total]);
    expect(granted).toBeGreaterThanOrEqual(total - TUNNEL_LIMITS.window_bytes);
  });

  it("answers the agent's reset with a JSON error, refused as 403 and unreachable as 502", async () => {
    const { peer, path } = await running();
    const refused = api(path);
    let { stream } = await peer.open();
    peer.send(jsonFrame(FrameType.reset, stream, { code: "refused", message: "port not declared" }));
    expect(await refused).toMatchObject({ status: 403, json: { error: { code: "forbidden", message: "port not declared", reset: "refused" } } });
    const unreachable = api(path);
    ({ stream } = await peer.open());
    peer.send(jsonFrame(FrameType.reset, stream, { code: "unreachable", message: "nothing listens on 8080" }));
    expect(await unreachable).toMatchObject({ status: 502, json: { error: { reset: "unreachable" } } });
  });

  it("redirects the bare port path to its trailing slash", async () => {
    const { id } = await running();
    const res = await SELF.fetch(`${BASE}/v1/jobs/${id}/ports/${PORT}?a=1`, { redirect: "manual" });
    expect([res.status, res.headers.get("location")]).toEqual([308, `/v1/jobs/${id}/ports/${PORT}/?a=1`]);
  });
});

describe("tunnel: what a job's server and its clients cannot do", () => {
  it("drops a job's cookie that names a Domain, and keeps its own host's", async () => {
    const { peer, path } = await running();
    const answer = api(`${path}login`);
    const { stream } = await peer.open();
    peer.head(stream, 200, [["set-cookie", "mine=1; Path=/"], ["set-cookie", "wide=1; Domain=gridx.test; Path=/"]]);
    peer.end(stream);
    const res = await answer;
    expect(res.headers.getSetCookie()).toEqual(["mine=1; Path=/"]);
  });

  it("frees a HEAD's place at once: more HEADs than the job's stream cap all answer", async () => {
    const { peer, path } = await running();
    for (let i = 0; i < 6; i++) {
      const answer = api(path, { method: "HEAD" });
      const { stream } = await peer.open();
      peer.head(stream, 200, [["content-length", "10"]]);
      peer.end(stream);
      expect((await answer).status).toBe(200);
    }
  });

  it("cuts a WebSocket client that sends far past what the job has read, and keeps the coordinator", async () => {
    const { peer, path } = await running();
    const client = upgrade(`${path}ws`);
    const { stream } = await peer.open();
    peer.head(stream, 101);
    const { ws, closed } = await client;
    // The fake agent never hands credit back: after a window, the rest waits in the coordinator, up to its bound.
    const message = new Uint8Array(90_000);
    for (let i = 0; i < 20; i++) ws.send(message);
    expect((await closed).code).toBe(1008);
    expect(readJson((await peer.next(FrameType.reset, stream)).payload, TunnelReset)).toMatchObject({ code: "limit" });
  });
});

describe("tunnel: WebSocket and exec", () => {
  it("relays WebSocket messages both ways and the client's close", async () => {
    const { peer, path } = await running();
    const client = upgrade(`${path}ws`);
    const { stream, open } = await peer.open();
    expect(open.target).toMatchObject({ type: "ws", port: PORT, path: "/ws" });
    peer.head(stream, 101);
    const { res, ws, inbox, closed } = await client;
    expect(res.status).toBe(101);
    ws.send("ping");
    const m = readMessage((await peer.next(FrameType.message, stream)).payload)!;
    expect([untext.decode(m.bytes), m.binary, m.final]).toEqual(["ping", false, true]);
    peer.send(messageFrame(stream, text.encode("po"), false, false));
    peer.send(messageFrame(stream, text.encode("ng"), false, true));
    await until(() => inbox.length === 1, "the echo");
    expect(inbox).toEqual(["pong"]);
    ws.close(1000, "bye");
    expect(readJson((await peer.next(FrameType.end, stream)).payload, TunnelEnd)).toMatchObject({ code: 1000, reason: "bye" });
    await closed;
  });

  it("closes a WebSocket 1009 when a message either way is over TUNNEL_WS_MESSAGE_BYTES", async () => {
    const { peer, path } = await running();
    let client = upgrade(`${path}ws`);
    let { stream } = await peer.open();
    peer.head(stream, 101);
    let { ws, closed } = await client;
    ws.send(new Uint8Array(100_001));
    expect((await closed).code).toBe(1009);
    expect(readJson((await peer.next(FrameType.reset, stream)).payload, TunnelReset)).toMatchObject({ code: "limit" });
    client = upgrade(`${path}ws`);
    ({ stream } = await peer.open());
    peer.head(stream, 101);
    ({ ws, closed } = await client);
    // Two fragments within credit, together past the bound.
    peer.send(messageFrame(stream, new Uint8Array(TUNNEL_LIMITS.chunk_bytes), true, false));
    peer.send(messageFrame(stream, new Uint8Array(TUNNEL_LIMITS.chunk_bytes), true, true));
    expect((await closed).code).toBe(1009);
  });

  it("runs an exec: stdin, stdout and stderr on their channels, then the exit code", async () => {
    const { peer, id } = await running();
    const client = upgrade(`/v1/jobs/${id}/exec?cmd=sh&cmd=-c&cmd=cat&tty=1&cols=80&rows=24`);
    const { stream, open } = await peer.open();
    expect(open.target).toEqual({ type: "exec", argv: ["sh", "-c", "cat"], tty: true, cols: 80, rows: 24 });
    peer.head(stream, 0);
    const { ws, inbox, closed } = await client;
    ws.send(new Uint8Array([0, ...text.encode("in")]));
    expect(untext.decode((await peer.next(FrameType.data, stream)).payload)).toBe("in");
    ws.send(JSON.stringify({ type: "resize", cols: 100, rows: 30 }));
    expect(JSON.parse(untext.decode((await peer.next(FrameType.resize, stream)).payload))).toEqual({ cols: 100, rows: 30 });
    ws.send(JSON.stringify({ type: "eof" }));
    await peer.next(FrameType.end, stream);
    peer.data(stream, "out");
    peer.data(stream, "err", FrameType.stderr);
    peer.end(stream, { exit_code: 3 });
    await closed;
    const [stdout, stderr, exit] = inbox;
    expect([...new Uint8Array(stdout as ArrayBuffer)]).toEqual([1, ...text.encode("out")]);
    expect([...new Uint8Array(stderr as ArrayBuffer)]).toEqual([2, ...text.encode("err")]);
    expect(JSON.parse(exit as string)).toEqual({ type: "exit", exit_code: 3 });
    const audit = await api(`/v1/audit?action=job.exec`);
    expect(audit.json.events.find((e: { target: string }) => e.target === id)).toMatchObject({ action: "job.exec", detail: { argv: ["sh", "-c", "cat"], tty: true } });
  });

  it("refuses exec to a viewer (403) and in a pool whose policy has exec off (403 naming it)", async () => {
    const project = await newProject();
    const viewer = await userToken({ project, role: "viewer" });
    const { id, pool } = await running({ project });
    expect((await api(`/v1/jobs/${id}/exec?cmd=ls`, { token: viewer.token, headers: { upgrade: "websocket" } })).status).toBe(403);
    const put = await api(`/v1/pools/${pool}/sandbox`, { method: "PUT", json: { exec: false } });
    expect(put.status).toBe(200);
    const off = await api(`/v1/jobs/${id}/exec?cmd=ls`, { headers: { upgrade: "websocket" } });
    expect([off.status, off.json.error.message]).toEqual([403, expect.stringContaining("exec off")]);
  });
});

describe("tunnel: access", () => {
  it("answers 401 without credentials, 404 to another project's member and for an undeclared port, 409 for a job not running", async () => {
    const { id, path } = await running();
    expect((await api(path, { token: null })).status).toBe(401);
    const outsider = await userToken({ project: await newProject(), role: "member" });
    expect((await api(path, { token: outsider.token })).status).toBe(404);
    expect((await api(`/v1/jobs/${id}/ports/9090/`)).json.error.message).toBe(`job ${id} declares no port 9090`);
    const queued = (await submit({ pool: uniquePool(), ports: [{ port: PORT }] })).json;
    const res = await api(`/v1/jobs/${queued.id}/ports/${PORT}/`);
    expect([res.status, res.json.error.code]).toEqual([409, "conflict"]);
    expect((await api(`/v1/jobs/${queued.id}/ports/${PORT}/links`, { method: "POST" })).status).toBe(409);
  });

  it("trades a one-time link for a session cookie scoped to the port, and refuses the link a second time", async () => {
    const { id, path, peer } = await running();
    const link = await api(`/v1/jobs/${id}/ports/${PORT}/links`, { method: "POST" });
    expect(link.status).toBe(201);
    const url = new URL(link.json.url);
    expect(url.pathname).toBe(path);
    expect(Date.parse(link.json.expires_at) - Date.now()).toBeLessThanOrEqual(TUNNEL_LIMITS.link_ttl_s * 1000);
    const first = await SELF.fetch(`${BASE}${url.pathname}${url.search}`, { redirect: "manual" });
    expect([first.status, first.headers.get("location")]).toEqual([302, path]);
    const cookie = first.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^gridx_port=gxp_[\w-]+;/);
    expect(cookie).toContain(`Path=${path}`);
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Lax");
    const again = await SELF.fetch(`${BASE}${url.pathname}${url.search}`, { redirect: "manual" });
    expect(again.status).toBe(401);
    // The cookie opens the port, and is not forwarded to the server.
    const answer = api(`${path}x`, { token: null, headers: { cookie: cookie.split(";")[0]! } });
    const { stream, open } = await peer.open();
    expect(open.target.type === "http" && open.target.headers.some(([n]) => n === "cookie")).toBe(false);
    peer.head(stream, 204);
    peer.end(stream);
    expect((await answer).status).toBe(204);
  });

  it("never opens a stream from the tunnel header of an agent's own connect request", async () => {
    const { peer, pool, id, workerId } = await running();
    const forged = JSON.stringify({ job_id: id, attempt: 1, worker_id: workerId, target: { type: "exec", argv: ["sh"], tty: false }, idle_timeout_s: 60, session: "exec" });
    const headers = { upgrade: "websocket", authorization: `Bearer ${await agentToken(pool, "intruder")}`, "x-gridx-tunnel": forged };
    const res = await SELF.fetch(`${BASE}/v1/agent/connect?protocol=1`, { headers });
    expect(res.status).toBe(101);
    res.webSocket!.accept();
    res.webSocket!.close(1000, "done");
    await expect(peer.next(FrameType.open, undefined, 300)).rejects.toThrow("no frame");
  });

  it("refuses an expired link", async () => {
    const { id, path } = await running();
    const token = "gxl_expired";
    await env.DB.prepare("INSERT INTO port_links (id, hash, job_id, port, token_id, created_by, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, 'admin', 'admin', ?5, ?6)")
      .bind(`pl_${crypto.randomUUID()}`, await sha256Hex(token), id, PORT, Date.now() - 120_000, Date.now() - 60_000)
      .run();
    expect((await SELF.fetch(`${BASE}${path}?gridx_link=${token}`, { redirect: "manual" })).status).toBe(401);
  });
});

describe("tunnel: bounds and endings", () => {
  it("answers 429 naming TUNNEL_STREAMS_PER_JOB past the job's stream cap", async () => {
    const { peer, path } = await running();
    const held = [1, 2, 3, 4].map(() => api(path));
    const streams = [];
    for (const _ of held) streams.push((await peer.open()).stream);
    const over = await api(path);
    expect([over.status, over.json.error.limit]).toEqual([429, 4]);
    expect(over.json.error.message).toContain("TUNNEL_STREAMS_PER_JOB");
    for (const s of streams) peer.send(jsonFrame(FrameType.reset, s, { code: "unreachable", message: "nothing listens" }));
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([502, 502, 502, 502]);
  });

  it("cuts a live HTTP body and a WebSocket when the agent's connection ends", async () => {
    const { peer, path, agent } = await running();
    const res = await (async () => {
      const answer = SELF.fetch(BASE + path, { headers: { authorization: `Bearer ${ADMIN}` } });
      const { stream } = await peer.open();
      peer.head(stream, 200);
      peer.data(stream, "partial");
      return answer;
    })();
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    expect(untext.decode((await reader.read()).value)).toBe("partial");
    const client = upgrade(`${path}ws`);
    const { stream: wsStream } = await peer.open();
    peer.head(wsStream, 101);
    const { closed } = await client;
    agent.close();
    await expect(reader.read()).rejects.toThrow("the worker's connection ended");
    expect((await closed).code).toBe(1011);
  });

  it("closes a WebSocket cut with a reason longer than a close frame carries", async () => {
    const { peer, path } = await running();
    const client = upgrade(`${path}ws`);
    const { stream } = await peer.open();
    peer.head(stream, 101);
    const { closed } = await client;
    // 100 characters of two bytes each: cut at 120 characters it is still past 123 bytes.
    peer.send(jsonFrame(FrameType.reset, stream, { code: "error", message: "é".repeat(100) }));
    expect((await closed).code).toBe(1011);
  });

  it("cuts a job's streams when its attempt ends", async () => {
    const { peer, path, agent, id } = await running();
    const answer = SELF.fetch(BASE + path, { headers: { authorization: `Bearer ${ADMIN}` } });
    const { stream } = await peer.open();
    peer.head(stream, 200);
    const res = await answer;
    agent.send({ type: "job_result", payload: { job_id: id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    await expect(res.text()).rejects.toThrow("the job ended");
    expect(readJson((await peer.next(FrameType.reset, stream)).payload, TunnelReset)).toMatchObject({ code: "gone" });
  });

  it("ignores frames for a stream from a socket it was not opened on", async () => {
    const { peer, path, pool } = await running();
    const other = await FakeAgent.join(await agentToken(pool, "t2"), { name: "a2" });
    heartbeats.push(setInterval(() => other.agent.sendRaw(HEARTBEAT_FRAME), 300));
    const answer = api(path);
    const { stream } = await peer.open();
    other.agent.sendRaw(jsonFrame(FrameType.head, stream, { status: 500, headers: [] }));
    other.agent.sendRaw(jsonFrame(FrameType.end, stream, {}));
    peer.head(stream, 200);
    peer.data(stream, "mine");
    peer.end(stream);
    expect(await answer).toMatchObject({ status: 200, text: "mine" });
  });
});

describe("tunnel hub", () => {
  it("answers 504 and resets the stream when the agent does not answer its open in time, freeing its place", async () => {
    const sent: number[] = [];
    const ws = { send: (b: Uint8Array) => sent.push(decodeTunnelFrame(b)!.type) } as unknown as WebSocket;
    const hub = new TunnelHub({ streamsPerJob: 1, streamsPerAgent: 1, sessionBytesPerS: 1 << 20, requestBytes: 1024, wsMessageBytes: 1024, openTimeoutMs: 20 }, () => undefined);
    const req = { job_id: "j_1", attempt: 1, worker_id: "w_1", target: { type: "http" as const, port: 1, method: "GET", path: "/", headers: [], body: false }, idle_timeout_s: 60, session: "port:1" };
    for (const _ of [1, 2]) {
      const res = await hub.open(ws, req, new Request("http://coordinator/"));
      expect([res.status, ((await res.json()) as { error: { message: string } }).error.message]).toEqual([504, "the agent did not answer within 0.02 s"]);
    }
    expect(sent).toEqual([FrameType.open, FrameType.reset, FrameType.open, FrameType.reset]);
  });

  it("grants credit later, not less, once a session is past its bytes per second", async () => {
    const windows: number[] = [];
    const ws = { send: (b: Uint8Array) => void (decodeTunnelFrame(b)!.type === FrameType.window && windows.push(readWindow(decodeTunnelFrame(b)!.payload)!)) } as unknown as WebSocket;
    const half = TUNNEL_LIMITS.window_bytes / 2;
    const hub = new TunnelHub({ streamsPerJob: 1, streamsPerAgent: 1, sessionBytesPerS: half, requestBytes: 1024, wsMessageBytes: 1024, openTimeoutMs: 5000 }, () => undefined);
    const req = { job_id: "j_1", attempt: 1, worker_id: "w_1", target: { type: "http" as const, port: 1, method: "GET", path: "/", headers: [], body: false }, idle_timeout_s: 60, session: "port:1" };
    const answer = hub.open(ws, req, new Request("http://coordinator/"));
    hub.frame(ws, jsonFrame(FrameType.head, 1, { status: 200, headers: [] }).buffer as ArrayBuffer);
    for (let sent = 0; sent < TUNNEL_LIMITS.window_bytes; sent += TUNNEL_LIMITS.chunk_bytes) {
      hub.frame(ws, encodeTunnelFrame(FrameType.data, 1, new Uint8Array(TUNNEL_LIMITS.chunk_bytes)).buffer as ArrayBuffer);
    }
    const reader = (await answer).body!.getReader();
    for (let read = 0; read < TUNNEL_LIMITS.window_bytes; ) read += (await reader.read()).value!.byteLength;
    // The first half window fit the second's budget; the second waits for it to refill.
    expect(windows).toEqual([half]);
    await until(() => windows.length === 2, "the delayed grant");
    expect(windows).toEqual([half, half]);
  });
});

describe("byte bucket", () => {
  it("lets a second's worth through at once and delays what goes past it, refilling with time", () => {
    const b = new ByteBucket(1000, 0);
    expect(b.take(1000, 0)).toBe(0);
    expect(b.take(500, 0)).toBe(500);
    // 1 s later: 1000 refilled, 500 of it owed already.
    expect(b.take(500, 1000)).toBe(0);
    expect(b.take(1, 1000)).toBeGreaterThan(0);
  });
});

describe("tunnel: per-port hosts (PORTS_DOMAIN) and sessions", () => {
  const DOMAIN = "ports.gridx.test";
  /** The worker as a deployment with PORTS_DOMAIN set would run it. */
  async function withDomain(url: string, init: RequestInit = {}): Promise<Response> {
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request(url, { redirect: "manual", ...init }) as Parameters<typeof worker.fetch>[0], { ...env, PORTS_DOMAIN: DOMAIN } as typeof env, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  }

  it("serves a port at its own host: links point there, its cookie covers that host only, and nothing else answers there", async () => {
    const { id, path, peer } = await running();
    const link = await withDomain(`${BASE}/v1/jobs/${id}/ports/${PORT}/links`, { method: "POST", headers: { authorization: `Bearer ${ADMIN}` } });
    expect(link.status).toBe(201);
    const url = new URL(((await link.json()) as { url: string }).url);
    expect(url.hostname).toBe(`p${PORT}-${id.replace("_", "-")}.${DOMAIN}`);
    // Not on the control plane's own origin: a browser session there could script the dashboard.
    expect((await withDomain(`${BASE}${url.pathname}${url.search}`)).status).toBe(401);
    const landing = await withDomain(url.href);
    expect(landing.status).toBe(302);
    const cookie = landing.headers.get("set-cookie")!;
    expect(cookie).toContain("Path=/;");
    const session = cookie.split(";")[0]!;

    // The host's root is the port's (the server sees / with strip_prefix), and so is /ui: the dashboard is not there.
    for (const page of ["/notebooks/x", "/ui/jobs"]) {
      const answer = withDomain(`http://${url.host}${page}`, { headers: { cookie: session } });
      const { stream, open } = await peer.open();
      expect(open.target).toMatchObject({ type: "http", path: page });
      peer.head(stream, 204);
      peer.end(stream);
      expect((await answer).status).toBe(204);
    }
    // A server told its base URL links under the port's path; that path is kept, not doubled.
    const based = withDomain(`http://${url.host}${path}static/a.js`, { headers: { cookie: session } });
    const { stream, open } = await peer.open();
    expect(open.target).toMatchObject({ path: "/static/a.js" });
    peer.head(stream, 204);
    peer.end(stream);
    expect((await based).status).toBe(204);
    // Another port host is the same site, so the cookie would ride along: its pages may not use it to change anything.
    const elsewhere = `http://p9999-j-0000000000000000000000000.${DOMAIN}`;
    expect((await withDomain(`http://${url.host}/api/kernels`, { method: "POST", headers: { cookie: session, origin: elsewhere } })).status).toBe(403);
    expect((await withDomain(`http://${url.host}/api/kernels/k/channels`, { headers: { cookie: session, origin: elsewhere, upgrade: "websocket" } })).status).toBe(403);
    expect((await withDomain(`http://${url.host}/api/kernels`, { method: "POST", headers: { cookie: session, "sec-fetch-site": "same-site" } })).status).toBe(403);
    const own = withDomain(`http://${url.host}/api/kernels`, { method: "POST", body: "{}", headers: { cookie: session, origin: `http://${url.host}` } });
    const kernel = await peer.open();
    peer.head(kernel.stream, 201);
    peer.end(kernel.stream);
    expect((await own).status).toBe(201);
    // A client cannot claim to be a port host on the control plane's origin.
    expect((await withDomain(`${BASE}${path}x`, { headers: { cookie: session, "x-gridx-port-host": "1" } })).status).toBe(401);
  });

  it("ends a browser session when its user leaves the job's project", async () => {
    const project = await newProject();
    const { id, path, peer } = await running({ project });
    const viewer = await userToken({ project, role: "viewer" });
    const link = await api(`/v1/jobs/${id}/ports/${PORT}/links`, { method: "POST", token: viewer.token });
    expect(link.status).toBe(201);
    const landing = await SELF.fetch(link.json.url, { redirect: "manual" });
    const session = landing.headers.get("set-cookie")!.split(";")[0]!;
    const answer = api(`${path}x`, { token: null, headers: { cookie: session } });
    const { stream } = await peer.open();
    peer.head(stream, 204);
    peer.end(stream);
    expect((await answer).status).toBe(204);
    expect((await api(`/v1/projects/${project}/members/${viewer.user}`, { method: "DELETE" })).status).toBe(204);
    expect((await api(`${path}x`, { token: null, headers: { cookie: session } })).status).toBe(401);
  });

  it("waits a job with ports for a worker that relays to ports, and says so", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool), { caps: caps({ ports: false }) });
    const job = (await submit({ pool, ports: [{ port: PORT }] })).json;
    expect(job.pending_reason).toContain("ports");
    expect(await agent.receives("assign_job", 400)).toBe(false);
    agent.close();
  });
});
