import { env, runDurableObjectAlarm } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { pollUntil } from "../helpers/poll.ts";
import { signatureHeader } from "../../control-plane/src/webhooks/signature.ts";
import { api, agentToken, FakeAgent, receiver, submit, uniquePool, userToken, type ReceivedPost } from "./helpers.ts";

const coordinator = (pool: string) => env.COORDINATOR.get(env.COORDINATOR.idFromName(pool));

/** Runs the pool's sweeps until `pred` holds of what the receiver got at `url` (other tests' coordinators sweep on by themselves). */
const sweepUntil = (pool: string, received: ReceivedPost[], url: string, pred: (r: ReceivedPost[]) => boolean, what: string) =>
  pollUntil(
    async () => {
      await runDurableObjectAlarm(coordinator(pool));
      return received.filter((r) => r.url === url);
    },
    pred,
    { timeoutMs: 10_000, intervalMs: 100, what },
  );

afterEach(() => {
  vi.restoreAllMocks();
});

describe("autoscaling hook routes", () => {
  it("sets a hook with a secret shown once, keeps it on a change of url, shows it and removes it", async () => {
    const pool = uniquePool();
    const made = await api(`/v1/pools/${pool}/autoscale`, { method: "PUT", json: { url: "https://scaler.example.com/a" } });
    expect(made.status).toBe(200);
    expect(made.json).toMatchObject({ pool, url: "https://scaler.example.com/a", created_by: "admin", settings: { scale_up_after_s: 1, scale_down_after_s: 1, cooldown_s: 60 } });
    expect(made.json.secret).toMatch(/^whsec_/);
    expect(made.json.id).toMatch(/^ash_/);

    const moved = await api(`/v1/pools/${pool}/autoscale`, { method: "PUT", json: { url: "https://scaler.example.com/b" } });
    expect(moved.status).toBe(200);
    expect(moved.json.secret).toBeUndefined();
    expect(moved.json.id).toBe(made.json.id);

    const shown = await api(`/v1/pools/${pool}/autoscale`);
    expect(shown.status).toBe(200);
    expect(shown.json).toMatchObject({ id: made.json.id, url: "https://scaler.example.com/b", calls: [] });
    expect(JSON.stringify(shown.json)).not.toContain(made.json.secret);

    expect((await api(`/v1/pools/${pool}/autoscale`, { method: "DELETE" })).status).toBe(204);
    expect((await api(`/v1/pools/${pool}/autoscale`)).status).toBe(404);
    expect((await api(`/v1/pools/${pool}/autoscale`, { method: "DELETE" })).status).toBe(404);
  });

  it("refuses a bad url or secret naming the field, and anyone but the admin", async () => {
    const pool = uniquePool();
    const put = (json: unknown, token?: string) => api(`/v1/pools/${pool}/autoscale`, { method: "PUT", json, token });
    const inward = await put({ url: "https://10.0.0.1/hook" });
    expect(inward.status).toBe(400);
    expect(inward.json.error).toMatchObject({ field: "url" });
    expect(inward.json.error.message).toContain("WEBHOOK_ALLOW_TARGETS");
    expect((await put({ url: "http://hooks.example.com/" })).json.error.field).toBe("url");
    const short = await put({ url: "https://scaler.example.com/", secret: "short" });
    expect(short.status).toBe(400);
    expect(short.json.error.field).toBe("secret");
    expect((await put({ url: "https://scaler.example.com/", extra: 1 })).status).toBe(400);
    const { token } = await userToken({ role: "owner" });
    expect((await put({ url: "https://scaler.example.com/" }, token)).status).toBe(403);
    expect((await api(`/v1/pools/${pool}/autoscale`, { token })).status).toBe(403);
  });
});

describe("autoscaling calls from the coordinator's sweep", () => {
  it("POSTs a signed scale_up with the shortfall once a job no worker takes has waited, retrying a failed try", async () => {
    const received = receiver((n) => (n === 1 ? 503 : 200));
    const pool = uniquePool();
    const secret = "a-secret-of-the-operators-own";
    expect((await api(`/v1/pools/${pool}/autoscale`, { method: "PUT", json: { url: "http://127.0.0.1:9/scale", secret } })).status).toBe(200);
    const job = (await submit({ pool, requirements: { cpus: 2, memory_mb: 2048, gpus: 1, labels: { zone: "eu" } } })).json;

    const [first] = await sweepUntil(pool, received, "http://127.0.0.1:9/scale", (r) => r.length >= 1, "a scale_up call");
    const body = JSON.parse(first!.body);
    expect(body).toMatchObject({
      type: "scale_up",
      pool,
      online_workers: 0,
      shortfall: { jobs: 1, never_fit: 1, cpus: 2, memory_mb: 2048, gpus: 1, largest: { cpus: 2, memory_mb: 2048, gpus: 1 }, labels: { "zone=eu": 1 } },
    });
    const ts = Number(first!.headers.get("gridx-timestamp"));
    expect(first!.headers.get("gridx-signature")).toBe(await signatureHeader(secret, ts, first!.body));
    expect(first!.headers.get("gridx-delivery-id")).toBe(body.call_id);

    // The 503 is retried after WEBHOOK_BACKOFF_S; the job is still queued, and no second call is made within the cooldown.
    const all = await sweepUntil(pool, received, "http://127.0.0.1:9/scale", (r) => r.length >= 2, "the retried call");
    expect(all.map((r) => JSON.parse(r.body).call_id)).toEqual([body.call_id, body.call_id]);
    const shown = (await api(`/v1/pools/${pool}/autoscale`)).json;
    expect(shown.calls).toHaveLength(1);
    expect(shown.calls[0]).toMatchObject({ id: body.call_id, kind: "scale_up", status: "delivered", attempts: 2, last_status: 200, body: { type: "scale_up" } });
    expect((await api(`/v1/jobs/${job.id}`)).json.status).toBe("queued");
    expect((await api(`/v1/pools/${pool}/autoscale`, { method: "DELETE" })).status).toBe(204);
  });

  it("makes no call for a pool without a hook, for a job an online worker takes, nor for one pinned to a busy worker", async () => {
    const received = receiver(() => 200);
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool), { name: "busy-one" });
    expect((await api(`/v1/pools/${pool}/autoscale`, { method: "PUT", json: { url: "http://127.0.0.1:9/none" } })).status).toBe(200);
    await submit({ pool });
    await agent.next("assign_job");
    // Waits for its busy worker, but a new worker could not take it.
    expect((await submit({ pool, worker: workerId })).status).toBe(201);
    const quiet = uniquePool();
    await submit({ pool: quiet });
    // Sweeps until well past SCALE_UP_AFTER_S (and SCALE_DOWN_AFTER_S: the worker holds its job, so it is not idle).
    const since = Date.now();
    await pollUntil(
      async () => {
        await runDurableObjectAlarm(coordinator(pool));
        await runDurableObjectAlarm(coordinator(quiet));
        return Date.now() - since;
      },
      (ms) => ms > 1500,
      { timeoutMs: 5000, intervalMs: 100, what: "sweeps past SCALE_UP_AFTER_S" },
    );
    expect(received.filter((r) => r.url === "http://127.0.0.1:9/none")).toEqual([]);
    // Its job is taken back at START_TIMEOUT_S (the fake agent never starts it) and would then wait for a call.
    expect((await api(`/v1/pools/${pool}/autoscale`, { method: "DELETE" })).status).toBe(204);
    agent.close();
  });

  it("hints scale_down naming a worker idle SCALE_DOWN_AFTER_S", async () => {
    const received = receiver(() => 200);
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool), { name: "idle-one" });
    expect((await api(`/v1/pools/${pool}/autoscale`, { method: "PUT", json: { url: "http://127.0.0.1:9/down" } })).status).toBe(200);
    const [call] = await sweepUntil(pool, received, "http://127.0.0.1:9/down", (r) => r.length >= 1, "a scale_down call");
    const body = JSON.parse(call!.body);
    expect(body).toMatchObject({ type: "scale_down", pool, workers: [{ id: workerId, name: "idle-one" }] });
    expect(Date.now() - Date.parse(body.workers[0].idle_since)).toBeGreaterThanOrEqual(1000);
    expect((await api(`/v1/pools/${pool}/autoscale`)).json.calls[0]).toMatchObject({ kind: "scale_down", status: "delivered" });
    agent.close();
  });
});
