import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { eq } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import { pollUntil } from "../helpers/poll.ts";
import { createDb } from "../../control-plane/src/db/client.ts";
import { webhookDeliveries } from "../../control-plane/src/db/schema.ts";
import { insertDeliveries, pruneDeliveries } from "../../control-plane/src/db/webhooks.ts";
import { firstIdAt } from "../../control-plane/src/ids.ts";
import { retryAfterFailure, settle } from "../../control-plane/src/webhooks/backoff.ts";
import { deliveriesFor } from "../../control-plane/src/webhooks/routing.ts";
import { newSigningSecret, signatureHeader } from "../../control-plane/src/webhooks/signature.ts";
import { checkTarget, parseIPv4, type TargetClass } from "../../control-plane/src/webhooks/target.ts";
import { api, newProject, receiver, submit, uniquePool, userToken } from "./helpers.ts";

const none = new Set<TargetClass>();
const refusal = (url: string, allowed: ReadonlySet<TargetClass> = none) => {
  const v = checkTarget(url, allowed);
  return v.ok ? null : v.reason;
};

describe("webhook targets (SSRF)", () => {
  it("takes public https URLs and normalizes them", () => {
    const v = checkTarget("HTTPS://Hooks.Example.com:8443/gridx?x=1", none);
    expect(v.ok && v.url.href).toBe("https://hooks.example.com:8443/gridx?x=1");
    expect(refusal("https://203.0.113.7/hook")).toBeNull();
    expect(refusal("https://[2606:4700::1111]/hook")).toBeNull();
  });

  it.each([
    ["http://127.0.0.1/", "loopback"],
    ["https://127.1/", "loopback"],
    ["https://2130706433/", "loopback"],
    ["https://0x7f000001/", "loopback"],
    ["https://0x7f.0.0.1/", "loopback"],
    ["https://017700000001/", "loopback"],
    ["https://0177.0.0.1/", "loopback"],
    ["https://localhost:8080/", "loopback"],
    ["https://LOCALHOST./", "loopback"],
    ["https://api.localhost/", "loopback"],
    ["https://[::1]/", "loopback"],
    ["https://[::ffff:127.0.0.1]/", "loopback"],
    ["https://[::ffff:7f00:1]/", "loopback"],
    ["https://[0:0:0:0:0:ffff:7f00:1]/", "loopback"],
    ["https://[64:ff9b::127.0.0.1]/", "loopback"],
    ["https://10.1.2.3/", "private"],
    ["https://172.16.0.1/", "private"],
    ["https://172.31.255.255/", "private"],
    ["https://192.168.1.1/", "private"],
    ["https://100.64.0.1/", "private"],
    ["https://3232235777/", "private"],
    ["https://[fc00::1]/", "private"],
    ["https://[fd12:3456::1]/", "private"],
    ["https://[::ffff:10.0.0.1]/", "private"],
    ["https://intranet/", "private"],
    ["https://printer.local/", "private"],
    ["https://db.internal/", "private"],
    ["https://169.254.169.254/latest/meta-data", "link-local"],
    ["https://[fe80::1]/", "link-local"],
    ["https://[::ffff:169.254.169.254]/", "link-local"],
  ])("refuses %s as a %s address unless allowed", (url, cls) => {
    expect(refusal(url)).toContain(`is a ${cls} address`);
    expect(refusal(url)).toContain("WEBHOOK_ALLOW_TARGETS");
    expect(refusal(url, new Set([cls as TargetClass]))).toBeNull();
  });

  it.each(["https://0.0.0.0/", "https://0/", "https://[::]/", "https://224.0.0.1/", "https://255.255.255.255/", "https://[ff02::1]/", "https://[::ffff:0.0.0.0]/"])(
    "never takes the unspecified, multicast or reserved %s",
    (url) => {
      expect(refusal(url, new Set(["loopback", "private", "link-local"]))).toContain("unspecified, multicast or reserved");
    },
  );

  it("takes plain http only to an allowed loopback or private target", () => {
    expect(refusal("http://hooks.example.com/")).toContain("must be https");
    expect(refusal("http://127.0.0.1:9000/hook", new Set(["loopback"]))).toBeNull();
    expect(refusal("http://10.0.0.5/hook", new Set(["private"]))).toBeNull();
    expect(refusal("http://169.254.1.1/", new Set(["link-local"]))).toContain("must be https");
  });

  it("refuses other schemes, credentials, and what is not a URL", () => {
    expect(refusal("ftp://hooks.example.com/")).toContain("must be https (not ftp)");
    expect(refusal("file:///etc/passwd")).toContain("must be https");
    expect(refusal("https://user:pw@hooks.example.com/")).toContain("user name or password");
    expect(refusal("not a url")).toBe("url is not a URL");
    expect(refusal(`https://hooks.example.com/${"a".repeat(2100)}`)).toContain("longer than");
  });

  it("reads every IPv4 spelling as the resolver does", () => {
    expect(parseIPv4("127.0.0.1")).toBe(0x7f000001);
    expect(parseIPv4("0x7f.1")).toBe(0x7f000001);
    expect(parseIPv4("0177.0.0.01")).toBe(0x7f000001);
    expect(parseIPv4("2130706433")).toBe(0x7f000001);
    expect(parseIPv4("1.2.3.256")).toBeNull();
    expect(parseIPv4("1.2.65535")).toBe(0x0102ffff);
    expect(parseIPv4("256.1.1.1")).toBeNull();
    expect(parseIPv4("example.com")).toBeNull();
    expect(parseIPv4("08.1.1.1")).toBeNull();
  });
});

describe("webhook backoff", () => {
  const policy = { baseS: 30, maxS: 3600, retryForH: 24 };
  const createdAt = 1_000_000;

  it("doubles from the base up to the cap, spread ±20 % by jitter", () => {
    const delay = (attempts: number, random = 0.5) => {
      const d = retryAfterFailure({ attempts, createdAt, now: createdAt, random }, policy);
      return d.status === "pending" ? (d.nextAt - createdAt) / 1000 : null;
    };
    expect([1, 2, 3, 4, 8, 20].map((a) => delay(a))).toEqual([30, 60, 120, 240, 3600, 3600]);
    expect(delay(1, 0)).toBe(24);
    expect(delay(1, 0.999999)).toBeCloseTo(36, 3);
  });

  it("gives up once the next try would come after the retry window", () => {
    const late = createdAt + 24 * 3_600_000 - 10_000;
    expect(retryAfterFailure({ attempts: 30, createdAt, now: late, random: 0.5 }, policy)).toEqual({ status: "failed" });
    expect(retryAfterFailure({ attempts: 1, createdAt, now: late, random: 0.5 }, { ...policy, baseS: 5 })).toEqual({ status: "pending", nextAt: late + 5000 });
  });

  it("settles a try: delivered on 2xx, retried or failed otherwise, keeping what the answer said", () => {
    const d = { id: "whd_1", attempts: 0, createdAt, nextAt: createdAt };
    expect(settle(d, { ok: true, status: 204, error: null }, { now: createdAt + 5, random: 0.5 }, policy)).toEqual({ id: "whd_1", status: "delivered", nextAt: createdAt, lastStatus: 204, lastError: null, finishedAt: createdAt + 5 });
    expect(settle(d, { ok: false, status: 500, error: "HTTP 500" }, { now: createdAt, random: 0.5 }, policy)).toEqual({ id: "whd_1", status: "pending", nextAt: createdAt + 30_000, lastStatus: 500, lastError: "HTTP 500", finishedAt: null });
    const old = { ...d, attempts: 29 };
    expect(settle(old, { ok: false, status: null, error: "no answer within 10 s" }, { now: createdAt + 24 * 3_600_000, random: 0.5 }, policy)).toMatchObject({ status: "failed", finishedAt: createdAt + 24 * 3_600_000 });
  });
});

describe("webhook signatures and routing", () => {
  it("signs `<timestamp>.<body>` with HMAC-SHA256 under the whole secret", async () => {
    // python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec_test", b"1767225600.{\"id\":1}", hashlib.sha256).hexdigest())'
    expect(await signatureHeader("whsec_test", 1767225600, '{"id":1}')).toBe("v1=c288d7ec0b1747de22e35fbdbabba9772c8e0d64b7db67e546bc92b86c005ab8");
  });

  it("makes secrets of 32 random bytes", () => {
    const a = newSigningSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(newSigningSecret()).not.toBe(a);
  });

  it("routes an event to its project's webhooks and every-project ones that asked for its type, made before it", () => {
    const event = { id: 7, jobId: "j_1", project: "a", pool: "default", status: "completed" as const, attempt: 1, exitCode: 0, failureReason: null, at: 100 };
    const hooks = [
      { id: "wh_a", project: "a", events: ["job.completed"], createdAt: 50 },
      { id: "wh_b", project: "b", events: ["job.completed"], createdAt: 50 },
      { id: "wh_all", project: null, events: ["job.completed", "job.failed"], createdAt: 50 },
      { id: "wh_failed", project: "a", events: ["job.failed"], createdAt: 50 },
      { id: "wh_late", project: "a", events: ["job.completed"], createdAt: 101 },
    ];
    let n = 0;
    const rows = deliveriesFor([event], hooks, { now: 200, newId: () => `whd_${++n}` });
    expect(rows.map((r) => r.webhookId)).toEqual(["wh_a", "wh_all"]);
    expect(JSON.parse(rows[0]!.payload)).toEqual({ id: 7, type: "job.completed", job_id: "j_1", project: "a", pool: "default", status: "completed", attempt: 1, exit_code: 0, failure_reason: null, at: 100, webhook_id: "wh_a", delivery_id: "whd_1" });
    expect(rows[0]).toMatchObject({ eventId: 7, event: "job.completed", status: "pending", attempts: 0, nextAt: 200 });
  });
});

describe("/v1/webhooks", () => {
  const create = (json: Record<string, unknown>, token?: string) => api("/v1/webhooks", { method: "POST", json, token });

  it("creates a webhook with its secret shown once, reads, lists and deletes it, and audits both", async () => {
    const project = await newProject();
    const made = await create({ url: "https://hooks.example.com/gridx", events: ["job.completed", "job.failed"], project });
    expect(made.status).toBe(201);
    expect(made.json).toMatchObject({ project, url: "https://hooks.example.com/gridx", events: ["job.completed", "job.failed"], created_by: "admin" });
    expect(made.json.secret).toMatch(/^whsec_/);
    const id = made.json.id as string;

    const shown = await api(`/v1/webhooks/${id}`);
    expect(shown.status).toBe(200);
    expect(shown.json).toEqual({ id, project, url: "https://hooks.example.com/gridx", events: ["job.completed", "job.failed"], created_by: "admin", created_at: made.json.created_at });
    expect(shown.text).not.toContain(made.json.secret);
    const listed = await api(`/v1/webhooks?project=${project}`);
    expect(listed.json.webhooks).toEqual([shown.json]);
    expect((await api(`/v1/webhooks/${id}/deliveries`)).json).toEqual({ deliveries: [], next_cursor: null });

    expect((await api(`/v1/webhooks/${id}`, { method: "DELETE" })).status).toBe(204);
    expect((await api(`/v1/webhooks/${id}`)).status).toBe(404);
    expect((await api(`/v1/webhooks/${id}`, { method: "DELETE" })).status).toBe(404);
    const audit = await api(`/v1/audit?project=${project}`);
    expect(audit.json.events.map((e: { action: string; target: string }) => [e.action, e.target]).slice(0, 2)).toEqual([
      ["webhook.delete", id],
      ["webhook.create", id],
    ]);
    expect(audit.text).not.toContain(made.json.secret);
  });

  it("lets a project's owner manage its webhooks; members and viewers get 403, outsiders 404", async () => {
    const project = await newProject();
    const owner = await userToken({ project, role: "owner" });
    const member = await userToken({ project, role: "member" });
    const viewer = await userToken({ project, role: "viewer" });
    const outsider = await userToken({ project: await newProject(), role: "owner" });
    const body = { url: "https://hooks.example.com/x", events: ["job.completed"], project };

    const made = await create(body, owner.token);
    expect(made.status).toBe(201);
    expect(made.json.created_by).toBe(owner.user);
    const id = made.json.id as string;
    for (const t of [member.token, viewer.token]) {
      expect((await create(body, t)).status).toBe(403);
      expect((await api(`/v1/webhooks/${id}`, { token: t })).status).toBe(403);
      expect((await api(`/v1/webhooks/${id}`, { method: "DELETE", token: t })).status).toBe(403);
    }
    const hidden = await create(body, outsider.token);
    expect(hidden.status).toBe(404);
    expect(hidden.json.error).toMatchObject({ code: "not_found", field: "project" });
    expect((await api(`/v1/webhooks/${id}`, { token: outsider.token })).status).toBe(404);
    expect((await api(`/v1/webhooks/${id}/deliveries`, { token: outsider.token })).status).toBe(404);
    expect((await api(`/v1/webhooks?project=${project}`, { token: outsider.token })).status).toBe(404);
    expect((await api("/v1/webhooks", { token: outsider.token })).json.webhooks).toEqual([]);
    expect((await api("/v1/webhooks", { token: owner.token })).json.webhooks.map((w: { id: string }) => w.id)).toEqual([id]);
    expect((await api(`/v1/webhooks/${id}/deliveries`, { token: owner.token })).status).toBe(200);
    expect((await api(`/v1/webhooks/${id}`, { method: "DELETE", token: owner.token })).status).toBe(204);
  });

  it("keeps every-project webhooks to the admin", async () => {
    const project = await newProject();
    const owner = await userToken({ project, role: "owner" });
    const refused = await create({ url: "https://hooks.example.com/all", events: ["job.failed"] }, owner.token);
    expect(refused.status).toBe(403);
    expect(refused.json.error.field).toBe("project");
    const made = await create({ url: "https://hooks.example.com/all", events: ["job.failed"] });
    expect(made.status).toBe(201);
    expect(made.json.project).toBeNull();
    expect((await api(`/v1/webhooks/${made.json.id}`, { token: owner.token })).status).toBe(404);
    expect((await api("/v1/webhooks", { token: owner.token })).json.webhooks).toEqual([]);
    expect((await api("/v1/webhooks")).json.webhooks.map((w: { id: string }) => w.id)).toContain(made.json.id);
    expect((await api(`/v1/webhooks/${made.json.id}`, { method: "DELETE" })).status).toBe(204);
  });

  it("answers bad input with a 400 naming the field", async () => {
    const project = await newProject();
    const cases: [Record<string, unknown>, string, string][] = [
      [{ events: ["job.completed"], project }, "url", "expected string"],
      [{ url: "https://10.0.0.1/hook", events: ["job.completed"], project }, "url", "private address"],
      [{ url: "http://hooks.example.com/", events: ["job.completed"], project }, "url", "must be https"],
      [{ url: "https://[::ffff:169.254.169.254]/", events: ["job.completed"], project }, "url", "link-local"],
      [{ url: "https://hooks.example.com/", events: [], project }, "events", "at least one"],
      [{ url: "https://hooks.example.com/", events: ["job.exploded"], project }, "events.0", ""],
      [{ url: "https://hooks.example.com/", events: ["job.completed"], project: "Bad Name" }, "project", ""],
      [{ url: "https://hooks.example.com/", events: ["job.completed"], project, secret: "mine" }, "secret", ""],
    ];
    for (const [json, field, text] of cases) {
      const res = await create(json);
      // The body rides along so a failure says which case it was.
      expect({ json, status: res.status, field: res.json.error?.field }).toEqual({ json, status: 400, field });
      expect(res.json.error.message).toContain(text);
    }
  });

  it("holds a project to WEBHOOK_MAX_PER_PROJECT", async () => {
    const project = await newProject();
    for (let i = 0; i < 20; i++) expect((await create({ url: `https://hooks.example.com/${i}`, events: ["job.completed"], project })).status).toBe(201);
    const over = await create({ url: "https://hooks.example.com/21", events: ["job.completed"], project });
    expect(over.status).toBe(409);
    expect(over.json.error.message).toContain("WEBHOOK_MAX_PER_PROJECT");
  });
});

describe("the webhook dispatcher", () => {
  const dispatcher = () => env.WEBHOOKS.get(env.WEBHOOKS.idFromName("webhooks"));
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const deliveries = async (id: string) => (await api(`/v1/webhooks/${id}/deliveries`)).json.deliveries as Record<string, any>[];

  async function hmacHex(secret: string, text: string) {
    const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return [...new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)))].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  it("turns the job events of its project into signed deliveries, once each, and retries a failed one", async () => {
    const project = await newProject();
    const other = await newProject();
    const received = receiver((n) => (n === 1 ? 500 : 200));
    const made = await api("/v1/webhooks", { method: "POST", json: { url: "http://127.0.0.1:9/hook", events: ["job.queued", "job.canceled"], project } });
    expect(made.status).toBe(201);
    const { id, secret } = made.json as { id: string; secret: string };

    const pool = uniquePool();
    const job = (await submit({ pool, project })).json;
    expect((await api(`/v1/jobs/${job.id}/cancel`, { method: "POST" })).status).toBe(200);
    await submit({ pool, project: other });
    await runDurableObjectAlarm(dispatcher());

    const settled = await pollUntil(
      () => deliveries(id),
      (ds) => ds.length === 2 && ds.every((d) => d.status === "delivered"),
      { timeoutMs: 15_000, intervalMs: 100, what: "both deliveries" },
    );
    expect(settled.map((d) => d.event).sort()).toEqual(["job.canceled", "job.queued"]);
    const retried = settled.find((d) => d.attempts === 2)!;
    expect(retried).toMatchObject({ status: "delivered", last_status: 200, last_error: null, next_at: null });
    expect(settled.filter((d) => d.attempts === 1)).toHaveLength(1);
    // One 500, then one delivery each: nothing sent twice, nothing of the other project.
    expect(received).toHaveLength(3);
    const bodies = received.map((r) => JSON.parse(r.body));
    expect(new Set(bodies.map((b) => b.delivery_id))).toEqual(new Set(settled.map((d) => d.id)));
    expect(bodies.every((b) => b.project === project && b.job_id === job.id && b.webhook_id === id)).toBe(true);
    expect(bodies.find((b) => b.type === "job.canceled")).toMatchObject({ status: "canceled", pool, attempt: 0 });

    for (const r of received) {
      expect(r.headers.get("content-type")).toBe("application/json");
      expect(r.headers.get("gridx-webhook-id")).toBe(id);
      expect(r.headers.get("gridx-delivery-id")).toBe(JSON.parse(r.body).delivery_id);
      const ts = r.headers.get("gridx-timestamp")!;
      expect(Math.abs(Number(ts) - Date.now() / 1000)).toBeLessThan(60);
      expect(r.headers.get("gridx-signature")).toBe(`v1=${await hmacHex(secret, `${ts}.${r.body}`)}`);
    }

    // Rewinding the cursor (a crash after the deliveries were written, before it moved) adds nothing.
    await runInDurableObject(dispatcher(), async (_obj, state) => state.storage.put("cursor", settled[0]!.event_id - 1));
    await runDurableObjectAlarm(dispatcher());
    await runInDurableObject(dispatcher(), async (_obj, state) => expect(await state.storage.get("cursor")).toBeGreaterThanOrEqual(settled[0]!.event_id));
    expect(await deliveries(id)).toHaveLength(2);
    expect(received).toHaveLength(3);
    expect((await api(`/v1/webhooks/${id}`, { method: "DELETE" })).status).toBe(204);
  });

  it("records a redirect as a failed try and does not follow it", async () => {
    const project = await newProject();
    const received = receiver(() => 302);
    const made = await api("/v1/webhooks", { method: "POST", json: { url: "http://127.0.0.1:9/moved", events: ["job.queued"], project } });
    await submit({ pool: uniquePool(), project });
    await runDurableObjectAlarm(dispatcher());
    const [d] = await pollUntil(() => deliveries(made.json.id), (ds) => ds[0]?.attempts >= 1, { timeoutMs: 10_000, intervalMs: 100, what: "a try" });
    expect(d).toMatchObject({ status: "pending", last_status: 302, last_error: "redirect not followed (HTTP 302)" });
    expect(d!.next_at).not.toBeNull();
    expect(received.every((r) => r.url === "http://127.0.0.1:9/moved")).toBe(true);
    expect((await api(`/v1/webhooks/${made.json.id}`, { method: "DELETE" })).status).toBe(204);
  });
});

describe("webhook delivery retention", () => {
  // A pending row is due only tomorrow, so the dispatcher does not take it for an orphan meanwhile.
  it("deletes finished deliveries made before the cut, oldest first, never a pending one", async () => {
    const db = createDb(env.DB);
    const now = Date.now();
    const day = 86_400_000;
    const row = (id: string, status: "pending" | "delivered" | "failed", eventId: number) => ({ id, webhookId: `wh_prune_${now}`, eventId, event: "job.completed", payload: "{}", status, attempts: 1, nextAt: now + day, lastStatus: null, lastError: null, createdAt: now, finishedAt: status === "pending" ? null : now });
    // newId never goes back in time within an isolate, so past ids are built from their time.
    const old = [firstIdAt("whd", now - 9 * day), firstIdAt("whd", now - 8 * day), firstIdAt("whd", now - 8 * day + 1)];
    const recent = firstIdAt("whd", now - day);
    await insertDeliveries(db, [row(old[0]!, "delivered", 1), row(old[1]!, "failed", 2), row(old[2]!, "pending", 3), row(recent, "delivered", 4)]);
    const cut = firstIdAt("whd", now - 7 * day);
    expect(await pruneDeliveries(db, cut, 1)).toBe(1);
    expect(await pruneDeliveries(db, cut, 10)).toBe(1);
    expect(await pruneDeliveries(db, cut, 10)).toBe(0);
    const left = await db.select({ id: webhookDeliveries.id }).from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, `wh_prune_${now}`));
    expect(left.map((r) => r.id).sort()).toEqual([old[2]!, recent].sort());
  });
});
