import { createHmac, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollUntil } from "../helpers/poll.ts";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { api, isDone, launchOnlineAgent, newProject, submit, uniqueName, waitForJob } from "./helpers.ts";

type Received = { path: string; headers: IncomingHttpHeaders; body: string };

/** A real HTTP receiver on 127.0.0.1: answers each POST with what `answer` says for its path and the how-many-th it is there. */
async function startReceiver(answer: (path: string, nth: number) => number) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const path = req.url ?? "/";
      received.push({ path, headers: req.headers, body });
      res.writeHead(answer(path, received.filter((r) => r.path === path).length)).end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  return {
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    /** Waits until `n` requests reached `path`. */
    requests: (path: string, n: number) =>
      pollUntil(async () => received.filter((r) => r.path === path), (rs) => rs.length >= n, { timeoutMs: 60_000, intervalMs: 50, what: `${n} webhook request(s) to ${path}` }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** What a receiver does with a delivery (docs/webhooks.md): the signature over `<timestamp>.<body>`, and a recent timestamp. */
function verified(secret: string, headers: IncomingHttpHeaders, body: string, toleranceS = 300): boolean {
  const ts = String(headers["gridx-timestamp"]);
  const expected = Buffer.from(`v1=${createHmac("sha256", secret).update(`${ts}.${body}`).digest("hex")}`);
  const given = Buffer.from(String(headers["gridx-signature"]));
  return given.length === expected.length && timingSafeEqual(given, expected) && Math.abs(Date.now() / 1000 - Number(ts)) <= toleranceS;
}

describe("webhooks: signed deliveries of a real job's events to a receiver on this machine", () => {
  const pool = uniqueName("webhooks");
  let agent: AgentProcess;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let project: string;
  const made: string[] = [];

  beforeAll(async () => {
    receiver = await startReceiver((path, nth) => (path === "/flaky" && nth === 1 ? 500 : 200));
    project = await newProject();
    agent = await launchOnlineAgent({ pool, name: uniqueName("webhooks-node") });
  });

  afterAll(async () => {
    // Left behind, the webhooks would keep the shared grid's dispatcher scanning for the other files.
    for (const id of made) await api(`/v1/webhooks/${id}`, { method: "DELETE" });
    await agent?.stop("SIGTERM");
    await receiver?.close();
  });

  async function register(path: string) {
    const res = await api("/v1/webhooks", { method: "POST", json: { url: receiver.url(path), events: ["job.completed"], project } });
    expect(res.status).toBe(201);
    made.push(res.json.id);
    return res.json as { id: string; secret: string };
  }

  const deliveries = async (id: string) => (await api(`/v1/webhooks/${id}/deliveries`)).json.deliveries as Record<string, any>[];

  it("POSTs a signed job.completed once the job has run", async () => {
    const hook = await register("/done");
    const job = await submit({ kind: "python", pool, project, python: { script: "print(6*7)" } });
    expect(await waitForJob(job.id, isDone)).toMatchObject({ status: "completed", exit_code: 0 });

    const [req] = await receiver.requests("/done", 1);
    expect(verified(hook.secret, req!.headers, req!.body)).toBe(true);
    expect(verified("whsec_wrong", req!.headers, req!.body)).toBe(false);
    const body = JSON.parse(req!.body);
    expect(body).toMatchObject({ type: "job.completed", job_id: job.id, project, pool, status: "completed", exit_code: 0, attempt: 1, failure_reason: null, webhook_id: hook.id });
    expect(req!.headers).toMatchObject({ "content-type": "application/json", "gridx-webhook-id": hook.id, "gridx-delivery-id": body.delivery_id });

    const [d] = await pollUntil(() => deliveries(hook.id), (ds) => ds[0]?.status === "delivered", { timeoutMs: 30_000, intervalMs: 100, what: "the delivery recorded" });
    expect(d).toMatchObject({ id: body.delivery_id, event: "job.completed", event_id: body.id, attempts: 1, last_status: 200, last_error: null });
  });

  it("tries again after the receiver answers 500, and shows the retry in deliveries", async () => {
    const hook = await register("/flaky");
    const job = await submit({ kind: "python", pool, project, python: { script: "print('again')" } });
    await waitForJob(job.id, isDone);

    const [first, second] = await receiver.requests("/flaky", 2);
    expect(second!.headers["gridx-delivery-id"]).toBe(first!.headers["gridx-delivery-id"]);
    expect(second!.body).toBe(first!.body);
    expect(verified(hook.secret, second!.headers, second!.body)).toBe(true);
    expect(JSON.parse(second!.body)).toMatchObject({ type: "job.completed", job_id: job.id });

    const [d] = await pollUntil(() => deliveries(hook.id), (ds) => ds[0]?.status === "delivered", { timeoutMs: 30_000, intervalMs: 100, what: "the retried delivery recorded" });
    expect(d!.attempts).toBeGreaterThanOrEqual(2);
    expect(d).toMatchObject({ last_status: 200, last_error: null, next_at: null });
  });
});
