import { describe, expect, it } from "vitest";
import { agentToken, api, submit, uniquePool, userToken } from "./helpers.ts";

describe("POST /v1/jobs validation", () => {
  it("creates a python job with every default applied", async () => {
    const res = await submit({ pool: uniquePool() });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({
      status: "queued",
      kind: "python",
      attempt: 0,
      limits: { timeout_s: 3600, memory_mb: 512, cpus: 1, pids: 256 },
      requirements: { gpus: 0, cpus: 1, memory_mb: 512, labels: {} },
      max_retries: 2,
      priority: 0,
      stdout: "",
      stderr: "",
      artifacts: [],
    });
    expect(res.json.id).toMatch(/^j_/);
  });

  it.each([
    [{ kind: "python" }, "python", /python/],
    [{ kind: "ruby", ruby: {} }, "kind", /kind/],
    [{ kind: "python", python: { script: "" } }, "python.script", /empty/],
    [{ kind: "python", python: { script: "x" }, limits: { timeout_s: 0 } }, "limits.timeout_s", /timeout_s|>=|greater/i],
    [{ kind: "python", python: { script: "x" }, limits: { memory_mb: 1.5 } }, "limits.memory_mb", /whole/],
    [{ kind: "python", python: { script: "x" }, priority: 5000 }, "priority", /priority|<=|less/i],
    [{ kind: "python", python: { script: "x" }, pool: "Bad Pool" }, "pool", /lowercase/],
    [{ kind: "python", python: { script: "x" }, surprise: 1 }, "surprise", /surprise|unrecognized/i],
    [{ kind: "command", command: { image: "gridx/python:latest", argv: [] } }, "command.argv", /program/],
    [{ kind: "python", python: { script: "x", args: [1] } }, "python.args.0", /string/],
  ])("rejects %j naming the field", async (body, field, message) => {
    const res = await api("/v1/jobs", { method: "POST", json: body });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe("validation_failed");
    expect(res.json.error.field).toBe(field || undefined);
    expect(res.json.error.message).toMatch(message);
  });

  it("rejects a body that is not JSON", async () => {
    const res = await api("/v1/jobs", { method: "POST", body: "{not json", headers: { "content-type": "application/json" } });
    expect(res.status).toBe(400);
    expect(res.json.error.message).toMatch(/not valid JSON/);
  });

  it("rejects a body over the size limit with 413", async () => {
    const res = await api("/v1/jobs", { method: "POST", json: { kind: "python", python: { script: "x".repeat(1024 * 1024 + 10) } } });
    expect(res.status).toBe(413);
    expect(res.json.error.code).toBe("payload_too_large");
  });

  it("rejects a script over its own limit", async () => {
    const res = await api("/v1/jobs", { method: "POST", json: { kind: "python", python: { script: "x".repeat(300 * 1024) } } });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe("python.script");
  });

  it("allows a command only in an allowed image", async () => {
    const ok = await api("/v1/jobs", { method: "POST", json: { kind: "command", pool: uniquePool(), command: { image: "busybox:1", argv: ["echo", "hi"] } } });
    expect(ok.status).toBe(201);
    const denied = await api("/v1/jobs", { method: "POST", json: { kind: "command", command: { image: "evil/miner:latest", argv: ["mine"] } } });
    expect(denied.status).toBe(400);
    expect(denied.json.error.field).toBe("command.image");
  });
});

describe("auth", () => {
  it("answers 401 without a token and with an unknown one", async () => {
    expect((await api("/v1/jobs", { token: null })).status).toBe(401);
    const bad = await api("/v1/jobs", { token: "gxu_nope" });
    expect(bad.status).toBe(401);
    expect(bad.json.error.code).toBe("unauthorized");
  });

  it("answers 403 to an agent token on user and admin routes", async () => {
    const token = await agentToken("default");
    const res = await api("/v1/jobs", { token });
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe("forbidden");
    expect((await api("/v1/workers", { token })).status).toBe(403);
    expect((await api("/v1/agent-tokens", { method: "POST", json: { name: "x" }, token })).status).toBe(403);
  });

  it("lets a user token submit jobs but not issue tokens", async () => {
    const { token: user } = await userToken();
    expect(user).toMatch(/^gxu_/);
    expect((await api("/v1/jobs", { method: "POST", json: { kind: "python", python: { script: "1" }, pool: uniquePool() }, token: user })).status).toBe(201);
    expect((await api("/v1/agent-tokens", { method: "POST", json: { name: "x" }, token: user })).status).toBe(403);
  });

  it("refuses a user token on the agent socket", async () => {
    const res = await api("/v1/agent/connect", { headers: { upgrade: "websocket" } });
    expect(res.status).toBe(403);
  });

  it("stores only a hash of each token", async () => {
    const { env } = await import("cloudflare:test");
    const token = await agentToken("default", "hash-check");
    const rows = await env.DB.prepare("SELECT hash FROM tokens WHERE name = 'hash-check'").all<{ hash: string }>();
    expect(rows.results).toHaveLength(1);
    expect(rows.results[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(rows.results[0]!.hash).not.toContain(token);
  });

  it("lets /health through without a token", async () => {
    const res = await api("/health", { token: null });
    expect(res.status).toBe(200);
    expect(res.json.ok).toBe(true);
  });
});

describe("idempotency", () => {
  it("returns the same job for the same key and body", async () => {
    const pool = uniquePool();
    const key = crypto.randomUUID();
    const a = await submit({ pool }, { "idempotency-key": key });
    const b = await submit({ pool }, { "idempotency-key": key });
    expect(a.status).toBe(201);
    expect(b.status).toBe(200);
    expect(b.json.id).toBe(a.json.id);
    const list = await api(`/v1/jobs?pool=${pool}`);
    expect(list.json.jobs).toHaveLength(1);
  });

  it("refuses the same key with a different body", async () => {
    const key = crypto.randomUUID();
    const pool = uniquePool();
    expect((await submit({ pool }, { "idempotency-key": key })).status).toBe(201);
    const clash = await submit({ pool, priority: 9 }, { "idempotency-key": key });
    expect(clash.status).toBe(409);
    expect(clash.json.error.field).toBe("Idempotency-Key");
  });
});

describe("reading jobs", () => {
  it("pages newest first with a cursor and filters by status", async () => {
    const pool = uniquePool();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submit({ pool })).json.id);
    const first = await api(`/v1/jobs?pool=${pool}&limit=2`);
    expect(first.json.jobs.map((j: any) => j.id)).toEqual([ids[4], ids[3]]);
    const second = await api(`/v1/jobs?pool=${pool}&limit=2&cursor=${first.json.next_cursor}`);
    expect(second.json.jobs.map((j: any) => j.id)).toEqual([ids[2], ids[1]]);
    const third = await api(`/v1/jobs?pool=${pool}&limit=2&cursor=${second.json.next_cursor}`);
    expect(third.json.jobs.map((j: any) => j.id)).toEqual([ids[0]]);
    expect(third.json.next_cursor).toBeNull();
    await api(`/v1/jobs/${ids[0]}/cancel`, { method: "POST" });
    const canceled = await api(`/v1/jobs?pool=${pool}&status=canceled`);
    expect(canceled.json.jobs.map((j: any) => j.id)).toEqual([ids[0]]);
  });

  it("rejects a bad list query", async () => {
    const res = await api("/v1/jobs?status=sleeping");
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe("status");
    expect((await api("/v1/jobs?limit=0")).json.error.field).toBe("limit");
  });

  it("answers 404 for a job that does not exist", async () => {
    const res = await api("/v1/jobs/j_missing");
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe("not_found");
    expect((await api("/v1/jobs/j_missing/cancel", { method: "POST" })).status).toBe(404);
    expect((await api("/v1/jobs/j_missing/logs")).status).toBe(404);
  });

  it("answers 404 in JSON for an unknown route", async () => {
    const res = await api("/v1/nothing-here");
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe("not_found");
  });
});

describe("cancel", () => {
  it("cancels a queued job at once, and again is a no-op", async () => {
    const job = (await submit({ pool: uniquePool() })).json;
    const res = await api(`/v1/jobs/${job.id}/cancel`, { method: "POST" });
    expect(res.status).toBe(200);
    expect(res.json.status).toBe("canceled");
    expect(res.json.finished_at).not.toBeNull();
    const again = await api(`/v1/jobs/${job.id}/cancel`, { method: "POST" });
    expect(again.status).toBe(200);
    expect(again.json.status).toBe("canceled");
  });
});

describe("workers API", () => {
  it("answers 404 when draining an unknown worker, and 403 to a user token", async () => {
    expect((await api("/v1/workers/w_nope/drain", { method: "POST" })).status).toBe(404);
    const { token: user } = await userToken();
    expect((await api("/v1/workers/w_nope/drain", { method: "POST", token: user })).status).toBe(403);
  });

  it("validates token requests", async () => {
    const res = await api("/v1/agent-tokens", { method: "POST", json: { pool: "x y", name: "a" } });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe("pool");
    expect((await api("/v1/agent-tokens", { method: "POST", json: {} })).json.error.field).toBe("name");
  });
});
