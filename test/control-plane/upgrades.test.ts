import { env, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pollUntil } from "../helpers/poll.ts";
import { agentToken, api, FakeAgent, uniquePool } from "./helpers.ts";

const hex = (bytes: ArrayBuffer) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sha256 = async (text: string) => hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
const uniqueVersion = () => `9.0.${Math.floor(Math.random() * 1e6)}`;

/** Publishes a bundle the way `gridx agent publish` does, the bytes put through the binding. */
async function publish(version: string, text: string, declared?: string) {
  const created = await api("/v1/agent-bundles", { method: "POST", json: { version, sha256: declared ?? (await sha256(text)), size: new TextEncoder().encode(text).byteLength } });
  expect(created.status).toBe(201);
  expect(created.json.upload.method).toBe("PUT");
  await env.BUCKET.put(`agent-bundles/${version}/gridx-agent.mjs`, text);
  return api(`/v1/agent-bundles/${version}/complete`, { method: "POST" });
}

const upgradeOf = async (pool: string) => (await api(`/v1/pools/${pool}/upgrade`)).json;

describe("agent bundles", () => {
  it("publishes a bundle whose stored bytes match its declared size and SHA-256, and lists it", async () => {
    const version = uniqueVersion();
    const done = await publish(version, "console.log('new agent')");
    expect(done.status).toBe(200);
    expect(done.json).toMatchObject({ version, status: "ready", sha256: await sha256("console.log('new agent')") });
    expect((await api("/v1/agent-bundles")).json.bundles.map((b: { version: string }) => b.version)).toContain(version);
    // A published version is never replaced: agents may hold its checksum.
    const again = await api("/v1/agent-bundles", { method: "POST", json: { version, sha256: "b".repeat(64), size: 10 } });
    expect(again.status).toBe(409);
    expect(again.json.error.field).toBe("version");
  });

  it("refuses bytes whose SHA-256 is not the declared one, and forgets them", async () => {
    const version = uniqueVersion();
    const res = await publish(version, "tampered", "c".repeat(64));
    expect(res.status).toBe(409);
    expect(res.json.error.message).toContain("SHA-256");
    expect((await api("/v1/agent-bundles")).json.bundles.map((b: { version: string }) => b.version)).not.toContain(version);
    expect(await env.BUCKET.head(`agent-bundles/${version}/gridx-agent.mjs`)).toBeNull();
  });

  it("names the field of a bad request: a version that is no folder name, a size over AGENT_BUNDLE_MAX_MB", async () => {
    const bad = await api("/v1/agent-bundles", { method: "POST", json: { version: "../x", sha256: "a".repeat(64), size: 1 } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.field).toBe("version");
    const big = await api("/v1/agent-bundles", { method: "POST", json: { version: uniqueVersion(), sha256: "a".repeat(64), size: 65 * 1024 * 1024 } });
    expect(big.status).toBe(413);
    expect(big.json.error.field).toBe("size");
  });

  it("is for the admin only", async () => {
    const token = await agentToken(uniquePool());
    expect((await api("/v1/agent-bundles", { token })).status).toBe(403);
  });
});

describe("pool upgrades", () => {
  it("answers 400 naming version for a bundle that was never published", async () => {
    const res = await api(`/v1/pools/${uniquePool()}/upgrade`, { method: "POST", json: { version: "0.0.404" } });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe("version");
  });

  it("orders connected workers on another version, leaves one already there, and follows the agent's reports to done", async () => {
    const pool = uniquePool();
    const version = uniqueVersion();
    expect((await publish(version, "bundle")).status).toBe(200);
    const token = await agentToken(pool, "old");
    const old = await FakeAgent.join(token, { name: "old", agent_version: "0.1.0" });
    const current = await FakeAgent.join(await agentToken(pool, "cur"), { name: "cur", agent_version: version });

    const res = await api(`/v1/pools/${pool}/upgrade`, { method: "POST", json: { version } });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ pool, version, requested_by: "admin" });
    const order = await old.agent.next("upgrade");
    expect(order.payload).toMatchObject({ version, sha256: await sha256("bundle"), size: 6 });
    expect(new URL(order.payload.url).pathname).toBe(`/cdn-cgi/local/r2/s3/gridx/agent-bundles/${version}/gridx-agent.mjs`);
    expect(await current.agent.receives("upgrade")).toBe(false);
    const byName = (u: { workers: { name: string; state: string }[] }): Record<string, { state: string }> => Object.fromEntries(u.workers.map((w) => [w.name, w]));
    expect(byName(res.json)).toMatchObject({ cur: { state: "done", from: version, to: version }, old: { state: "pending", from: "0.1.0", to: version } });

    old.agent.send({ type: "upgrade_status", payload: { version, state: "downloading", reason: null } });
    old.agent.send({ type: "draining", payload: {} });
    old.agent.send({ type: "upgrade_status", payload: { version, state: "restarting", reason: null } });
    await pollUntil(() => upgradeOf(pool), (u) => byName(u).old?.state === "restarting", { timeoutMs: 3000, intervalMs: 50, what: "restarting" });
    // A report about another version is stale: it changes nothing.
    old.agent.send({ type: "upgrade_status", payload: { version: "0.0.1", state: "failed", reason: "old news" } });
    old.agent.close();

    // The restarted agent's hello with the target version finishes the upgrade; its own drain ended with the process.
    const back = await FakeAgent.join(token, { name: "old", agent_version: version });
    expect(await back.agent.receives("upgrade")).toBe(false);
    const after = byName(await upgradeOf(pool));
    expect(after.old).toMatchObject({ state: "done", from: "0.1.0", to: version, version, online: true });
    const worker = (await api(`/v1/workers/${back.workerId}`)).json;
    expect(worker.status).toBe("online");
  });

  it("does not order again a worker that rolled back, until the operator asks again; an offline worker is ordered at its hello", async () => {
    const pool = uniquePool();
    const version = uniqueVersion();
    expect((await publish(version, "broken bundle")).status).toBe(200);
    const token = await agentToken(pool, "w");
    const first = await FakeAgent.join(token, { name: "w", agent_version: "0.1.0" });
    first.agent.close();
    await pollUntil(() => upgradeOf(pool), (u) => u.workers[0]?.online === false, { timeoutMs: 3000, intervalMs: 50, what: "offline" });

    expect((await api(`/v1/pools/${pool}/upgrade`, { method: "POST", json: { version } })).json.workers[0]).toMatchObject({ state: null, online: false });
    const agent = await FakeAgent.join(token, { name: "w", agent_version: "0.1.0" });
    await agent.agent.next("upgrade");
    agent.agent.send({ type: "upgrade_status", payload: { version, state: "restarting", reason: null } });
    await pollUntil(() => upgradeOf(pool), (u) => u.workers[0].state === "restarting", { timeoutMs: 3000, intervalMs: 50, what: "restarting" });
    agent.agent.close();

    // The new bundle never connected: the launcher brought the old one back, which says so after its hello.
    const rolled = await FakeAgent.join(token, { name: "w", agent_version: "0.1.0" });
    expect(await rolled.agent.receives("upgrade")).toBe(false);
    // Its hello alone says so (the agent's report may be lost)...
    const inferred = await pollUntil(() => upgradeOf(pool), (u) => u.workers[0].state === "rolled_back", { timeoutMs: 3000, intervalMs: 50, what: "rolled back at hello" });
    expect(inferred.workers[0].reason).toBe(`it restarted for ${version} and came back on 0.1.0`);
    // ...and the agent's report says why.
    rolled.agent.send({ type: "upgrade_status", payload: { version, state: "rolled_back", reason: "no hello accepted within 120 s" } });
    await pollUntil(() => upgradeOf(pool), (u) => u.workers[0].reason === "no hello accepted within 120 s", { timeoutMs: 3000, intervalMs: 50, what: "the agent's reason" });
    expect((await upgradeOf(pool)).workers[0]).toMatchObject({ from: "0.1.0", to: version, reason: "no hello accepted within 120 s", version: "0.1.0" });

    expect((await api(`/v1/pools/${pool}/upgrade`, { method: "POST", json: { version } })).status).toBe(200);
    expect((await rolled.agent.next("upgrade")).payload.version).toBe(version);
  });

  it("gives an order that was never given (a D1 failure after the target was saved) at the next sweep", async () => {
    const pool = uniquePool();
    const version = uniqueVersion();
    expect((await publish(version, "new bundle")).status).toBe(200);
    const { agent } = await FakeAgent.join(await agentToken(pool, "late"), { name: "late", agent_version: "0.1.0" });
    // The target as POST /v1/pools/:pool/upgrade saves it, with no order given after it.
    await env.DB.prepare("INSERT INTO pool_upgrades (pool, version, requested_by, requested_at) VALUES (?1, ?2, 'admin', ?3)").bind(pool, version, Date.now()).run();
    await runDurableObjectAlarm(env.COORDINATOR.get(env.COORDINATOR.idFromName(pool)));
    expect((await agent.next("upgrade")).payload).toMatchObject({ version, sha256: await sha256("new bundle") });
    expect((await upgradeOf(pool)).workers[0]).toMatchObject({ state: "pending", to: version });
    agent.close();
  });

  it("shows a pool nobody upgraded with no target", async () => {
    expect(await upgradeOf(uniquePool())).toEqual({ pool: expect.any(String), version: null, requested_by: null, requested_at: null, workers: [] });
  });
});
