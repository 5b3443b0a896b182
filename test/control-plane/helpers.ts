import type { z } from "zod";
import { SELF } from "cloudflare:test";
import { vi } from "vitest";
import { readResponse } from "../helpers/http.ts";
import { pollUntil } from "../helpers/poll.ts";
import { CoordinatorToAgent, decodeFrame, encode, type AgentToCoordinator, type WorkerCaps } from "../../protocol/index.ts";

export const ADMIN = "test-admin-token";
const BASE = "http://gridx.test";

export async function api(path: string, init: RequestInit & { token?: string | null; json?: unknown } = {}) {
  const headers = new Headers(init.headers);
  const token = init.token === undefined ? ADMIN : init.token;
  if (token) headers.set("authorization", `Bearer ${token}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(init.json);
  }
  return readResponse(await SELF.fetch(BASE + path, { ...init, headers, body }));
}

/** A unique pool per test, so each test talks to a fresh coordinator. */
export const uniquePool = () => `p-${crypto.randomUUID().slice(0, 8)}`;

export async function submit(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  return api("/v1/jobs", { method: "POST", json: { kind: "python", python: { script: "print(1)" }, ...body }, headers });
}

export async function agentToken(pool: string, name = "t") {
  const res = await api("/v1/agent-tokens", { method: "POST", json: { pool, name } });
  if (res.status !== 201) throw new Error(`agent token: ${res.status} ${res.text}`);
  return res.json.token as string;
}

/** A project of the test's own (admin-created), with optional quotas and weight. */
export async function newProject(body: { name?: string; quotas?: Record<string, number>; weight?: number } = {}) {
  const name = body.name ?? `pr-${crypto.randomUUID().slice(0, 8)}`;
  const res = await api("/v1/projects", { method: "POST", json: { ...body, name } });
  if (res.status !== 201 && res.status !== 409) throw new Error(`project: ${res.status} ${res.text}`);
  return name;
}

/**
 * A new user with an API token, a member of `project` with `role` (no membership with null).
 * The project is created when it does not exist.
 */
export async function userToken(opts: { project?: string; role?: "owner" | "member" | "viewer" | null; expires_in_s?: number } = {}) {
  const name = `u-${crypto.randomUUID().slice(0, 8)}`;
  const user = await api("/v1/users", { method: "POST", json: { name } });
  if (user.status !== 201) throw new Error(`user: ${user.status} ${user.text}`);
  const project = opts.project ?? "default";
  const role = opts.role === undefined ? "member" : opts.role;
  if (role) {
    await newProject({ name: project });
    const put = await api(`/v1/projects/${project}/members/${name}`, { method: "PUT", json: { role } });
    if (put.status !== 200) throw new Error(`member: ${put.status} ${put.text}`);
  }
  const issued = await api("/v1/api-tokens", { method: "POST", json: { name: `${name}-token`, user: name, ...(opts.expires_in_s ? { expires_in_s: opts.expires_in_s } : {}) } });
  if (issued.status !== 201) throw new Error(`token: ${issued.status} ${issued.text}`);
  return { token: issued.json.token as string, tokenId: issued.json.id as string, user: name, userId: user.json.id as string, project };
}

export const caps = (over: Partial<WorkerCaps> = {}): WorkerCaps => ({
  cpu_cores: 4,
  memory_mb: 8192,
  gpus: [],
  nvidia_runtime: false,
  labels: {},
  os: "Linux test",
  arch: "x64",
  wsl: false,
  runtimes: ["runc"],
  egress: false,
  // A fake agent answers tunnel frames the test scripts for it.
  ports: true,
  ...over,
});

type Received = CoordinatorToAgent;

/** A protocol-level agent: a real WebSocket into the coordinator, with no Docker behind it. */
export class FakeAgent {
  private inbox: Received[] = [];
  private waiters: { type: string; resolve: (m: Received) => void }[] = [];
  closed: { code: number; reason: string } | null = null;
  /** How many messages each frame received so far carried, in order. */
  readonly frameSizes: number[] = [];
  /** Where binary (tunnel) frames go; tests that play a stream's agent side set it. */
  onBinary: (bytes: Uint8Array) => void = () => undefined;

  private constructor(readonly ws: WebSocket) {
    ws.addEventListener("message", (ev) => {
      if (typeof ev.data !== "string") return this.onBinary(new Uint8Array(ev.data));
      const messages = decodeFrame(String(ev.data), CoordinatorToAgent);
      this.frameSizes.push(messages.length);
      for (const decoded of messages) {
        if (!decoded.ok) throw new Error(`coordinator sent a bad frame: ${decoded.message}`);
        const waiter = this.waiters.findIndex((w) => w.type === decoded.message.type);
        if (waiter >= 0) this.waiters.splice(waiter, 1)[0]!.resolve(decoded.message);
        else this.inbox.push(decoded.message);
      }
    });
    ws.addEventListener("close", (ev) => {
      this.closed = { code: ev.code, reason: ev.reason };
    });
  }

  static async connect(token: string): Promise<FakeAgent> {
    const res = await SELF.fetch(`${BASE}/v1/agent/connect?protocol=1`, { headers: { upgrade: "websocket", authorization: `Bearer ${token}` } });
    if (res.status !== 101 || !res.webSocket) throw new Error(`agent connect answered ${res.status}: ${await res.text()}`);
    const ws = res.webSocket;
    ws.binaryType = "arraybuffer";
    ws.accept();
    return new FakeAgent(ws);
  }

  /** Connects and says hello; resolves with the hello_ack. */
  static async join(token: string, hello: Partial<Extract<z.input<typeof AgentToCoordinator>, { type: "hello" }>["payload"]> = {}) {
    const agent = await FakeAgent.connect(token);
    agent.send({ type: "hello", payload: { agent_version: "test", name: "a1", slots: 1, caps: caps(), running: [], ...hello } });
    const ack = await agent.next("hello_ack");
    return { agent, workerId: ack.payload.worker_id };
  }

  send(msg: z.input<typeof AgentToCoordinator>) {
    this.ws.send(encode(msg));
  }

  /** Several messages in one batched frame. */
  sendBatch(...msgs: z.input<typeof AgentToCoordinator>[]) {
    this.ws.send(`[${msgs.map(encode).join(",")}]`);
  }

  sendRaw(raw: string | Uint8Array) {
    this.ws.send(raw);
  }

  /** The next message of a type (already received or still to come), or a timeout error. */
  next<T extends Received["type"]>(type: T, timeoutMs = 3000): Promise<Extract<Received, { type: T }>> {
    const i = this.inbox.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0] as Extract<Received, { type: T }>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no ${type} within ${timeoutMs} ms; inbox: ${JSON.stringify(this.inbox.map((m) => m.type))}`));
      }, timeoutMs);
      const done = (m: Received) => {
        clearTimeout(timer);
        resolve(m as Extract<Received, { type: T }>);
      };
      this.waiters.push({ type, resolve: done });
    });
  }

  /** Whether a message of this type arrives within the window (for "must not happen" checks). */
  async receives(type: Received["type"], windowMs = 300): Promise<boolean> {
    try {
      await this.next(type, windowMs);
      return true;
    } catch {
      return false;
    }
  }

  close() {
    this.ws.close(1000, "test done");
  }
}

/** Polls a job until a predicate holds. */
export function waitForJob(id: string, pred: (job: any) => boolean, timeoutMs = 5000): Promise<any> {
  return pollUntil(async () => (await api(`/v1/jobs/${id}`)).json, pred, { timeoutMs, intervalMs: 50, what: `job ${id}` });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A POST received by `receiver`. */
export type ReceivedPost = { url: string; headers: Headers; body: string };

/**
 * Answers POSTs to 127.0.0.1 (webhook and autoscaling receivers) with `answer(n)` for the n-th,
 * recording them; other fetches pass through. Undone by `vi.restoreAllMocks()`.
 */
export function receiver(answer: (n: number) => number): ReceivedPost[] {
  const received: ReceivedPost[] = [];
  const real = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const req = new Request(input, init);
    if (new URL(req.url).hostname !== "127.0.0.1") return real(input, init);
    received.push({ url: req.url, headers: req.headers, body: await req.text() });
    return new Response("", { status: answer(received.length) });
  });
  return received;
}
