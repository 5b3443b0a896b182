import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { authenticate } from "../../control-plane/src/limits/gate.ts";
import { settingsOf } from "../../control-plane/src/settings.ts";
import { pollUntil } from "../helpers/poll.ts";
import { agentToken, api, FakeAgent, uniquePool, userToken } from "./helpers.ts";

const settings = settingsOf(env);
/** Requests sent at once while draining a token: faster than it refills. */
const BATCH = 50;
/**
 * The cheapest request a token's limit counts: one refused (403) for its kind after it is
 * counted, so a drain outpaces the refill even on a slow machine.
 */
const cheap = (token: string) => (token.startsWith("gxa_") ? api("/v1/projects", { token }) : api("/v1/agent/artifacts/prepare", { method: "POST", token, json: {} }));

/** A client address no other test uses (a fresh IPv6 /64). */
const newAddress = () => {
  const hex = crypto.randomUUID().replace(/-/g, "");
  return `2001:db8:${hex.slice(0, 4)}:${hex.slice(4, 8)}::1`;
};
const from = (address: string) => ({ "cf-connecting-ip": address });

/** Sends batches of one request until one is refused; every one before it must get `through`. */
async function drain(send: () => Promise<{ status: number; headers: Headers; json: any; text: string }>, burst: number, through = 200) {
  for (let sent = 0; sent < burst * 10; sent += BATCH) {
    const answers = await Promise.all(Array.from({ length: BATCH }, send));
    const refused = answers.find((r) => r.status === 429);
    if (refused) return refused;
    expect(answers.filter((r) => r.status !== through).map((r) => `${r.status} ${r.text}`)).toEqual([]);
  }
  throw new Error(`no 429 in ${burst * 10} requests`);
}

describe("the per-token rate limit", () => {
  it("answers 429 with Retry-After past the burst, naming the limit; another token is unaffected", async () => {
    const a = await userToken();
    const b = await userToken();
    const refused = await drain(() => cheap(a.token), settings.RATE_LIMIT_BURST, 403);
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
    expect(refused.json.error).toMatchObject({ code: "too_many_requests", limit: settings.RATE_LIMIT_RPS });
    expect(refused.json.error.message).toContain(`rate limit of ${settings.RATE_LIMIT_RPS} requests/s with bursts of ${settings.RATE_LIMIT_BURST} (RATE_LIMIT_RPS)`);
    expect((await api("/v1/projects", { token: b.token })).status).toBe(200);
  });

  it("lets the token through again once it has waited", async () => {
    const { token } = await userToken();
    const refused = await drain(() => cheap(token), settings.RATE_LIMIT_BURST, 403);
    const wait = Number(refused.headers.get("retry-after")) * 1000;
    const back = pollUntil(() => api("/v1/projects", { token }), (r) => r.status !== 429, { timeoutMs: wait + 5000, intervalMs: 100, what: "the drained token" });
    await expect(back).resolves.toMatchObject({ status: 200 });
  });

  it("lets the request through when the limiter itself fails", async () => {
    const broken = { ...env, RATE_LIMITER: { idFromName: () => { throw new Error("limiter down"); } } } as unknown as Env;
    const { token, userId } = await userToken();
    expect(await authenticate(broken, token, newAddress(), true)).toMatchObject({ resolved: { principal: { kind: "user", userId } } });
    expect(await authenticate(broken, "gxu_nope", newAddress(), true)).toEqual({ resolved: null, refusal: null });
  });
});

describe("the agents' socket", () => {
  it("counts no message on it and not its upgrade, only the agent token's HTTP calls", async () => {
    const token = await agentToken(uniquePool());
    const { agent } = await FakeAgent.join(token);
    const frames = settings.AGENT_RATE_LIMIT_BURST + 50;
    for (let i = 0; i < frames; i++) agent.send({ type: "heartbeat", payload: {} });
    for (let i = 0; i < frames; i++) await agent.next("heartbeat_ack");
    const prepare = await api("/v1/agent/artifacts/prepare", { method: "POST", token, json: { job_id: "j_none", attempt: 1, files: [] } });
    // The route's own answer: the limit let the call through.
    expect([prepare.status, prepare.json.error.message]).toEqual([403, "attempt 1 of job j_none is not this agent's"]);

    const refused = await drain(() => cheap(token), settings.AGENT_RATE_LIMIT_BURST, 403);
    expect(refused.json.error).toMatchObject({ code: "too_many_requests", limit: settings.AGENT_RATE_LIMIT_RPS });
    agent.close();
    const again = await FakeAgent.connect(token);
    again.close();
  });
});

describe("failed authentication, per client address", () => {
  it("answers 401 up to the limit, then 429 to every token from that address, a right one too", async () => {
    const address = newAddress();
    const { token } = await userToken();
    for (let i = 0; i < settings.AUTH_FAILURES_PER_MIN; i++) {
      const bad = await api("/v1/projects", { token: `gxu_guess${i}`, headers: from(address) });
      expect([i, bad.status]).toEqual([i, 401]);
    }
    const refused = await api("/v1/projects", { token: "gxu_guess", headers: from(address) });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused.json.error).toMatchObject({ code: "too_many_requests", limit: settings.AUTH_FAILURES_PER_MIN });
    expect(refused.json.error.message).toContain("AUTH_FAILURES_PER_MIN");
    expect((await api("/v1/projects", { token, headers: from(address) })).status).toBe(429);
    expect((await api("/v1/projects", { token, headers: from(newAddress()) })).status).toBe(200);
  });

  it("holds the dashboard's sign-in form to the same limit", async () => {
    const address = newAddress();
    const { token } = await userToken();
    const signIn = async (t: string) => {
      const res = await SELF.fetch("http://gridx.test/ui/login", {
        method: "POST",
        headers: { ...from(address), origin: "http://gridx.test", "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: t, next: "/ui" }).toString(),
        redirect: "manual",
      });
      await res.text();
      return res;
    };
    for (let i = 0; i < settings.AUTH_FAILURES_PER_MIN; i++) expect([i, (await signIn(`gxu_guess${i}`)).status]).toEqual([i, 401]);
    const refused = await signIn(token);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await api("/v1/projects", { token, headers: from(address) })).status).toBe(429);
  });

  it("does not count successful requests", async () => {
    const address = newAddress();
    const { token } = await userToken();
    for (let i = 0; i < settings.AUTH_FAILURES_PER_MIN; i++) expect((await api("/v1/projects", { token, headers: from(address) })).status).toBe(200);
    for (let i = 0; i < settings.AUTH_FAILURES_PER_MIN; i++) expect((await api("/v1/projects", { token: "gxu_nope", headers: from(address) })).status).toBe(401);
  });
});
