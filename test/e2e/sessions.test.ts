import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { pollUntil } from "../helpers/poll.ts";
import { api, cp, isDone, launchOnlineAgent, newProject, runGridx, submit, uniqueName, waitForJob } from "./helpers.ts";

const SERVER = readFileSync(new URL("../support/port-server.py", import.meta.url), "utf8");
const PORT = 8000;

/** A fetch with the admin's bearer token (or `token`), redirects not followed. */
function authed(path: string, init: RequestInit = {}, token = cp().adminToken) {
  const headers = new Headers(init.headers);
  if (token) headers.set("authorization", `Bearer ${token}`);
  return fetch(cp().url + path, { redirect: "manual", ...init, headers });
}

/** A WebSocket to the control plane, open (or the error that refused it). */
function openSocket(path: string, headers: Record<string, string>): Promise<WebSocket> {
  const ws = new WebSocket(cp().url.replace(/^http/, "ws") + path, { headers });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

const nextMessage = (ws: WebSocket) => new Promise<{ data: Buffer; binary: boolean }>((resolve) => ws.once("message", (data: Buffer, binary) => resolve({ data, binary })));

/** The port's page once its server answers through the tunnel (502 while nothing listens yet). */
const whenServing = (base: string, page: string, init: RequestInit = {}) =>
  pollUntil(async () => authed(base + page, init), (r) => r.status === 200, { timeoutMs: 120_000, intervalMs: 250, what: `${base}${page} to answer` });

/** A user of its own with an API token, a member of `project`. */
async function userIn(project: string, role: string): Promise<string> {
  const name = uniqueName("user");
  expect((await api("/v1/users", { method: "POST", json: { name } })).status).toBe(201);
  expect((await api(`/v1/projects/${project}/members/${name}`, { method: "PUT", json: { role } })).status).toBe(200);
  const issued = await api("/v1/api-tokens", { method: "POST", json: { name: `${name}-cli`, user: name } });
  expect(issued.status).toBe(201);
  return issued.json.token;
}

/*
 * Interactive sessions through the real grid: wrangler dev, a real agent and Docker. The job's
 * container has no network; every byte reaches it through the control plane and the agent's
 * own outbound socket.
 */
describe("interactive sessions", () => {
  const pool = uniqueName("ports");
  let agent: AgentProcess;
  let jobId: string;
  let base: string;

  beforeAll(async () => {
    agent = await launchOnlineAgent({ pool, name: uniqueName("ports-node"), slots: 3 });
    jobId = (await submit({ kind: "python", pool, python: { script: SERVER, args: [String(PORT)] }, ports: [{ port: PORT }], limits: { timeout_s: 900 } })).id;
    base = `/v1/jobs/${jobId}/ports/${PORT}`;
    await waitForJob(jobId, (j) => j.status === "running" || isDone(j), 120_000);
    await whenServing(base, "/hello");
  }, 240_000);

  afterAll(async () => {
    if (jobId) await api(`/v1/jobs/${jobId}/cancel`, { method: "POST", json: {} });
    await agent?.stop("SIGTERM");
  });

  it("serves GET and POST with a body, and keeps the caller's token from the job", async () => {
    const hello = await authed(`${base}/hello?x=1`);
    expect(hello.status).toBe(200);
    const text = await hello.text();
    expect(text).toContain("hello from the job");
    // The prefix is stripped, the query kept, and neither the bearer token nor a gridx cookie reaches the job.
    expect(text).toContain("path=/hello?x=1 auth=none cookie=none");

    const body = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) % 251;
    const echoed = await authed(`${base}/echo`, { method: "POST", body, headers: { "content-type": "application/octet-stream" } });
    expect(echoed.status).toBe(200);
    expect(Buffer.from(await echoed.arrayBuffer()).equals(body)).toBe(true);
  });

  it("streams a response as the server writes it", async () => {
    const res = await authed(`${base}/stream`);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let seen = "";
    // The second chunk is only written after /release, so reading the first proves it streamed.
    while (!seen.includes("first\n")) {
      const r = await reader.read();
      if (r.done) throw new Error(`the body ended after ${JSON.stringify(seen)}`);
      seen += decoder.decode(r.value);
    }
    expect(seen).not.toContain("second");
    expect((await authed(`${base}/release`)).status).toBe(200);
    for (let r = await reader.read(); !r.done; r = await reader.read()) seen += decoder.decode(r.value);
    expect(seen).toBe("first\nsecond\n");
  });

  it("carries a 48 MiB download intact", async () => {
    const res = await authed(`${base}/big?mib=48`);
    expect(res.status).toBe(200);
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(bytes.length).toBe(48 * 1024 * 1024);
    expect(bytes[1024 * 1024 + 255]).toBe(255);
  });

  it("echoes WebSocket messages, text and binary", async () => {
    const ws = await openSocket(`${base}/ws`, { authorization: `Bearer ${cp().adminToken}` });
    ws.send("ping");
    const text = await nextMessage(ws);
    expect([text.data.toString(), text.binary]).toEqual(["ping", false]);
    // Larger than a frame's chunk: split on the way in, joined again on the way out.
    const big = Buffer.alloc(300 * 1024, 7);
    ws.send(big);
    const back = await nextMessage(ws);
    expect(back.binary).toBe(true);
    expect(back.data.equals(big)).toBe(true);
    ws.close();
  });

  it("refuses callers without credentials, non-members and a spent or expired link", async () => {
    expect((await authed(`${base}/hello`, {}, "")).status).toBe(401);
    const outsider = await userIn(await newProject(), "member");
    expect((await authed(`${base}/hello`, {}, outsider)).status).toBe(404);
    expect((await authed(`${base}/links`, { method: "POST" }, outsider)).status).toBe(404);
    // An undeclared port is no way in either.
    expect((await authed(`/v1/jobs/${jobId}/ports/22/hello`)).status).toBe(404);

    const link = await authed(`${base}/links`, { method: "POST" });
    expect(link.status).toBe(201);
    const { url, expires_at } = (await link.json()) as { url: string; expires_at: string };
    expect(Date.parse(expires_at)).toBeGreaterThan(Date.now());
    const landing = await fetch(url, { redirect: "manual" });
    expect(landing.status).toBe(302);
    const cookie = landing.headers.get("set-cookie")!;
    expect(cookie).toMatch(new RegExp(`Path=${base}/`));
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    expect(new URL(landing.headers.get("location")!, cp().url).searchParams.has("gridx_link")).toBe(false);
    const session = cookie.split(";")[0]!;
    const page = await fetch(`${cp().url}${base}/hello`, { headers: { cookie: session } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("cookie=none");
    // The cookie is a session for this job's port only.
    expect((await fetch(`${cp().url}/v1/jobs/${jobId}`, { headers: { cookie: session } })).status).toBe(401);
    // One use only.
    expect((await fetch(url, { redirect: "manual" })).status).toBe(401);

    const late = (await (await authed(`${base}/links`, { method: "POST" })).json()) as { url: string; expires_at: string };
    await pollUntil(async () => Date.now(), (now) => now > Date.parse(late.expires_at), { timeoutMs: 120_000, intervalMs: 250, what: "the link to expire" });
    expect((await fetch(late.url, { redirect: "manual" })).status).toBe(401);
  }, 150_000);

  it("leaves the container without a network", async () => {
    const res = await authed(`${base}/net`);
    expect(await res.text()).toBe("isolated");
  });

  it("runs a command in the job's container with gridx exec", async () => {
    const res = await runGridx(["exec", jobId, "--", "sh", "-c", "id -u; echo to-stderr >&2; exit 3"]);
    expect(res.stdout).toBe("1000\n");
    expect(res.stderr).toContain("to-stderr");
    expect(res.code).toBe(3);
    const audit = await api(`/v1/audit?action=job.exec`);
    expect(audit.json.events.find((e: any) => e.target === jobId)).toMatchObject({ action: "job.exec", detail: { argv: ["sh", "-c", "id -u; echo to-stderr >&2; exit 3"] } });
  });

  it("ends the session cleanly when the agent is killed", async () => {
    const ws = await openSocket(`${base}/ws`, { authorization: `Bearer ${cp().adminToken}` });
    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    agent.process.kill("SIGKILL");
    expect(await closed).not.toBe(1000);
    // Once the worker is gone, the port answers with a JSON error, never a hang.
    const res = await pollUntil(async () => authed(`${base}/hello`), (r) => r.status !== 200, { timeoutMs: 60_000, intervalMs: 250, what: "the port to be closed" });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBeTruthy();
  }, 90_000);
});

describe("jupyter", () => {
  const pool = uniqueName("jupyter");
  let agent: AgentProcess;

  beforeAll(async () => {
    agent = await launchOnlineAgent({ pool, name: uniqueName("jupyter-node"), slots: 1 });
  });

  afterAll(async () => {
    await agent?.stop("SIGTERM");
  });

  it("starts a notebook server and runs a cell through the kernel's WebSocket, from a browser link", async () => {
    const started = await runGridx(["jupyter", "--pool", pool, "--no-open", "--json"]);
    expect(started.code).toBe(0);
    const { job_id: id, url } = JSON.parse(started.stdout) as { job_id: string; url: string };
    const landing = await fetch(url, { redirect: "manual" });
    expect(landing.status).toBe(302);
    const cookie = landing.headers.get("set-cookie")!.split(";")[0]!;
    const prefix = `/v1/jobs/${id}/ports/8888`;
    const withCookie = (path: string, init: RequestInit = {}) => fetch(`${cp().url}${prefix}${path}`, { ...init, headers: { cookie, "content-type": "application/json", ...init.headers } });

    expect((await withCookie("/api/status")).status).toBe(200);
    const kernel = await withCookie("/api/kernels", { method: "POST", body: JSON.stringify({ name: "python3" }) });
    expect(kernel.status).toBe(201);
    const { id: kernelId } = (await kernel.json()) as { id: string };
    const ws = await openSocket(`${prefix}/api/kernels/${kernelId}/channels`, { cookie });
    const msgId = `m-${Date.now()}`;
    const outputs: string[] = [];
    const done = new Promise<void>((resolve) =>
      ws.on("message", (raw: Buffer) => {
        const msg = JSON.parse(raw.toString());
        if (msg.parent_header?.msg_id !== msgId) return;
        if (msg.msg_type === "stream") outputs.push(msg.content.text);
        if (msg.msg_type === "status" && msg.content.execution_state === "idle") resolve();
      }),
    );
    ws.send(
      JSON.stringify({
        header: { msg_id: msgId, username: "test", session: "s-1", msg_type: "execute_request", version: "5.3", date: new Date().toISOString() },
        parent_header: {},
        metadata: {},
        content: { code: "import os\nprint(6 * 7, os.getcwd())", silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true },
        channel: "shell",
        buffers: [],
      }),
    );
    await done;
    expect(outputs.join("")).toBe("42 /work/output\n");
    ws.close();
    expect((await api(`/v1/jobs/${id}/cancel`, { method: "POST", json: {} })).status).toBe(200);
    await waitForJob(id, isDone);
  }, 300_000);
});
