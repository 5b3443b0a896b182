import { env, SELF } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { HEARTBEAT_FRAME } from "../../protocol/index.ts";
import { resolveSecret, sha256Hex } from "../../control-plane/src/auth/tokens.ts";
import { timeline } from "../../control-plane/src/dashboard/views/jobs.tsx";
import { createDb } from "../../control-plane/src/db/client.ts";
import { formatDuration } from "../../control-plane/src/dashboard/views/parts.tsx";
import { ADMIN, agentToken, api, caps, FakeAgent, newProject, submit, uniquePool, userToken, waitForJob } from "./helpers.ts";
import { BASE, ORIGIN, secretOf, signIn, ui } from "./dashboard-client.ts";

/** The id of the session a cookie holds, as GET /v1/sessions names it. */
async function sessionIdOf(cookie: string): Promise<string> {
  const res = await api("/v1/sessions", { token: secretOf(cookie) });
  return res.json.sessions.find((s: any) => s.current).id;
}

/** true if a cookie still opens a dashboard page, false if it is sent to sign in; anything else, as status and location. */
async function admitted(cookie: string) {
  const res = await ui("/ui/jobs", { cookie });
  if (res.status === 200) return true;
  const location = res.headers.get("location");
  return res.status === 303 && location === "/ui/login?next=%2Fui%2Fjobs" ? false : `${res.status} ${location}`;
}

/** Runs one job to its end over a fake agent: started, two log lines, the given exit code. */
async function runJob(agent: FakeAgent, pool: string, exitCode: number) {
  const job = (await submit({ pool })).json;
  const assign = await agent.next("assign_job");
  expect(assign.payload.job_id).toBe(job.id);
  agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
  await waitForJob(job.id, (j) => j.status === "running");
  agent.send({
    type: "job_log",
    payload: { job_id: job.id, attempt: 1, seq: 0, lines: [{ stream: "stdout", text: "hello <b>grid</b>", ts: 1 }, { stream: "stderr", text: "careful", ts: 2 }] },
  });
  agent.send({ type: "job_result", payload: { job_id: job.id, attempt: 1, exit_code: exitCode, failure_reason: exitCode === 0 ? null : "exit_code", message: exitCode === 0 ? null : `exited ${exitCode}` } });
  await agent.next("result_ack");
  return waitForJob(job.id, (j) => ["completed", "failed"].includes(j.status));
}

describe("dashboard: signing in", () => {
  it("ends the admin's sessions when the admin token changes, and stores nothing that checks a guess at it", async () => {
    const cookie = await signIn(ADMIN);
    const db = createDb(env.DB);
    expect((await resolveSecret(db, secretOf(cookie), ADMIN))?.principal.kind).toBe("admin");
    // The same session, read by a control plane whose GRIDX_ADMIN_TOKEN was rotated.
    expect(await resolveSecret(db, secretOf(cookie), "rotated-admin-token")).toBeNull();
    const row = await env.DB.prepare("SELECT token_id FROM sessions WHERE hash = ?1").bind(await sha256Hex(secretOf(cookie))).first<{ token_id: string }>();
    expect(row!.token_id).toMatch(/^admin:[0-9a-f]{32}$/);
    expect(row!.token_id).not.toContain((await sha256Hex(ADMIN)).slice(0, 32));
  });

  it("sends browsers from / to /ui and leaves API clients a JSON 404", async () => {
    const browser = await ui("/", { headers: { accept: "text/html,application/xhtml+xml" } });
    expect(browser.status).toBe(302);
    expect(browser.headers.get("location")).toBe("/ui");
    const client = await ui("/", { headers: { accept: "application/json" } });
    expect(client.status).toBe(404);
    expect(JSON.parse(client.text).error.code).toBe("not_found");
  });

  it("sends pages and form posts without a session to the sign-in page and answers fragments 401", async () => {
    for (const path of ["/ui", "/ui/jobs?status=failed", "/ui/jobs/j_nope", "/ui/workers", "/ui/run"]) {
      const res = await ui(path);
      expect({ path, status: res.status, location: res.headers.get("location") }).toEqual({ path, status: 303, location: `/ui/login?next=${encodeURIComponent(path)}` });
    }
    expect((await ui("/ui/live/jobs")).status).toBe(401);
    const post = await ui("/ui/run", { form: { script: "print(1)" }, headers: ORIGIN });
    expect({ status: post.status, location: post.headers.get("location") }).toEqual({ status: 303, location: "/ui/login" });
    expect((await ui("/ui/run", { form: { script: "print(1)" }, headers: { ...ORIGIN, "x-gridx-fragment": "1" } })).status).toBe(401);
  });

  it("serves a sign-in form with a labelled token field, and the assets, without a session", async () => {
    const page = await ui("/ui/login");
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/^<!doctype html>/);
    expect(page.text).toContain('<label for="token">');
    expect(page.text).toMatch(/<input id="token" name="token" type="password"/);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    const css = await ui("/ui/assets/app.css");
    expect(css.status).toBe(200);
    expect(css.headers.get("content-type")).toMatch(/text\/css/);
    const js = await ui("/ui/assets/app.js");
    expect(js.headers.get("content-type")).toMatch(/javascript/);
    expect(js.text).toContain("x-gridx-fragment");
  });

  it("refuses a wrong token and an agent token, and sets no cookie", async () => {
    for (const token of ["not-a-token", "gxu_forged", await agentToken(uniquePool())]) {
      const res = await ui("/ui/login", { form: { token, next: "/ui" }, headers: ORIGIN });
      expect(res.status).toBe(401);
      expect(res.headers.get("set-cookie")).toBeNull();
      expect(res.text).toContain("That token was refused");
      expect(res.text).not.toContain(token);
    }
    const empty = await ui("/ui/login", { form: { token: "  " }, headers: ORIGIN });
    expect(empty.status).toBe(400);
  });

  it("signs in with an HttpOnly, SameSite=Strict cookie for /ui only, Secure over https", async () => {
    const res = await ui("/ui/login", { form: { token: ADMIN, next: "/ui/jobs?status=failed" }, headers: ORIGIN });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/ui/jobs?status=failed");
    const cookie = res.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^gridx_session=/);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    expect(cookie).toMatch(/Path=\/ui(;|$)/);
    expect(cookie).not.toMatch(/Secure/i);

    const https = await ui("/ui/login", { base: "https://gridx.test", form: { token: ADMIN }, headers: { origin: "https://gridx.test" } });
    expect(https.status).toBe(303);
    expect(https.headers.get("set-cookie")).toMatch(/Secure/i);

    const { token, user: name } = await userToken();
    const user = await signIn(token);
    const page = await ui("/ui", { cookie: user });
    expect(page.status).toBe(200);
    expect(page.text).toContain(`<span class="who">${name}</span>`);
  });

  it("returns only to dashboard paths after signing in", async () => {
    for (const next of ["//evil.example/ui", "https://evil.example/", "/v1/jobs", "/ui\\@evil"]) {
      const res = await ui("/ui/login", { form: { token: ADMIN, next }, headers: ORIGIN });
      expect({ next, location: res.headers.get("location") }).toEqual({ next, location: "/ui" });
    }
  });

  it("refuses form posts that do not come from the dashboard's own origin", async () => {
    const noOrigin = await ui("/ui/login", { form: { token: ADMIN } });
    expect(noOrigin.status).toBe(403);
    const foreign = await ui("/ui/login", { form: { token: ADMIN }, headers: { origin: "https://evil.example" } });
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get("set-cookie")).toBeNull();
    const fetchMetadata = await ui("/ui/login", { form: { token: ADMIN }, headers: { "sec-fetch-site": "same-origin" } });
    expect(fetchMetadata.status).toBe(303);
    const crossSite = await ui("/ui/login", { form: { token: ADMIN }, headers: { "sec-fetch-site": "cross-site" } });
    expect(crossSite.status).toBe(403);

    const cookie = await signIn();
    const job = (await submit({ pool: uniquePool() })).json;
    const forged = await ui(`/ui/jobs/${job.id}/cancel`, { cookie, form: {}, headers: { origin: "https://evil.example" } });
    expect(forged.status).toBe(403);
    expect((await api(`/v1/jobs/${job.id}`)).json.status).toBe("queued");
  });

  it("sends a stale cookie back to sign in, clearing it, and signs out", async () => {
    const stale = await ui("/ui/jobs", { cookie: "gridx_session=gxu_revoked-or-made-up" });
    expect(stale.status).toBe(303);
    expect(stale.headers.get("location")).toBe("/ui/login?next=%2Fui%2Fjobs");
    expect(stale.headers.get("set-cookie")).toMatch(/gridx_session=;.*Max-Age=0/i);

    const cookie = await signIn();
    const out = await ui("/ui/logout", { cookie, form: {}, headers: ORIGIN });
    expect(out.status).toBe(303);
    expect(out.headers.get("location")).toBe("/ui/login?signed_out=1");
    expect(out.headers.get("set-cookie")).toMatch(/gridx_session=;.*Max-Age=0/i);
  });
});

describe("dashboard: pages", () => {
  it("lists jobs with status and pool filters, and a live fragment", async () => {
    const cookie = await signIn();
    const pool = uniquePool();
    const kept = (await submit({ pool })).json;
    const canceled = (await submit({ pool })).json;
    await api(`/v1/jobs/${canceled.id}/cancel`, { method: "POST" });

    const all = await ui(`/ui/jobs?pool=${pool}`, { cookie });
    expect(all.status).toBe(200);
    expect(all.text).toContain(kept.id);
    expect(all.text).toContain(canceled.id);
    expect(all.headers.get("cache-control")).toBe("no-store");

    const filtered = await ui(`/ui/jobs?pool=${pool}&status=canceled`, { cookie });
    expect(filtered.text).toContain(canceled.id);
    expect(filtered.text).not.toContain(kept.id);
    expect(filtered.text).toMatch(/<a href="\/ui\/jobs\?status=canceled&amp;pool=[^"]+" aria-current="page">canceled<\/a>/);

    const live = await ui(`/ui/live/jobs?pool=${pool}&status=queued`, { cookie });
    expect(live.status).toBe(200);
    expect(live.text).toMatch(/^<div id="jobs-live" data-live="\/ui\/live\/jobs\?status=queued&amp;pool=/);
    expect(live.text).toContain(kept.id);
    expect(live.text).not.toContain(canceled.id);
  });

  it("shows a finished job's timeline, exit code, failure reason and escaped log, and stops refreshing", async () => {
    const cookie = await signIn();
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool), { name: "dash-w1" });
    const job = await runJob(agent, pool, 3);

    const page = await ui(`/ui/jobs/${job.id}`, { cookie });
    expect(page.status).toBe(200);
    const events = ["Submitted", "Attempt 1 assigned", "to worker dash-w1", "Attempt 1 started", "Attempt 1 ended", "exit code 3", "Job failed"];
    expect(events.filter((e) => !page.text.includes(e))).toEqual([]);
    expect(page.text).toMatch(/<dd id="job-exit-code">3<\/dd>/);
    expect(page.text).toContain("exit_code: exited 3");
    expect(page.text).toContain('<span class="ln stdout">hello &lt;b&gt;grid&lt;/b&gt;\n</span>');
    expect(page.text).toContain('<span class="ln stderr">careful\n</span>');
    expect(page.text).not.toContain("Cancel job");

    const live = await ui(`/ui/live/jobs/${job.id}`, { cookie });
    expect(live.text).toMatch(/^<div id="job-live" class="job-live">/);

    // The log panel's stream: server-sent events after the cursor, then the end.
    const rest = await ui(`/ui/live/jobs/${job.id}/log?after=1.0`, { cookie });
    expect(rest.headers.get("content-type")).toMatch(/text\/event-stream/);
    expect(rest.text).not.toContain("event: log");
    expect(rest.text).toContain("event: end");
    const first = await ui(`/ui/live/jobs/${job.id}/log`, { cookie });
    expect(first.text).toContain('"text":"careful"');
    // The whole log, as text, beside the newest lines the page shows.
    expect(page.text).toContain(`<a href="/ui/jobs/${job.id}/log.txt">Whole log</a>`);
    const whole = await ui(`/ui/jobs/${job.id}/log.txt`, { cookie });
    expect(whole.headers.get("content-type")).toMatch(/text\/plain/);
    expect(whole.text).toContain("hello <b>grid</b>\n");
    expect(whole.text).toContain("careful\n");
    agent.close();
  });

  it("cancels a job from its page, and says why when it cannot", async () => {
    const cookie = await signIn();
    const pool = uniquePool();
    const job = (await submit({ pool })).json;
    const page = await ui(`/ui/jobs/${job.id}`, { cookie });
    expect(page.text).toContain(`<form method="post" action="/ui/jobs/${job.id}/cancel"`);
    expect(page.text).toContain(`data-live="/ui/live/jobs/${job.id}"`);

    const res = await ui(`/ui/jobs/${job.id}/cancel`, { cookie, form: {}, headers: ORIGIN });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/ui/jobs/${job.id}?done=canceled`);
    expect((await api(`/v1/jobs/${job.id}`)).json.status).toBe("canceled");
    expect((await ui(res.headers.get("location")!, { cookie })).text).toContain("Cancel requested");

    const { agent } = await FakeAgent.join(await agentToken(pool), { name: "dash-w2" });
    const done = await runJob(agent, pool, 0);
    const late = await ui(`/ui/jobs/${done.id}/cancel`, { cookie, form: {}, headers: ORIGIN });
    expect(late.status).toBe(409);
    expect(late.text).toContain("Could not cancel");
    expect(late.text).toContain("already finished");
    agent.close();

    const missing = await ui("/ui/jobs/j_nope", { cookie });
    expect(missing.status).toBe(404);
    expect(missing.text).toContain("no job j_nope");
  });

  it("runs Python from the run page: a plain form post, the script's fragment, and the API's validation message", async () => {
    const cookie = await signIn();
    const pool = uniquePool();
    const form = { script: "print('hi')\r\nprint(2)", pool, timeout_s: "30", memory_mb: "256" };
    const res = await ui("/ui/run", { cookie, form, headers: ORIGIN });
    expect(res.status).toBe(303);
    const id = /^\/ui\/run\?job=(.+)$/.exec(res.headers.get("location")!)![1]!;
    const job = (await api(`/v1/jobs/${id}`)).json;
    expect(job).toMatchObject({ kind: "python", pool, status: "queued", limits: { timeout_s: 30, memory_mb: 256 } });
    expect(job.spec.task.python.script).toBe("print('hi')\nprint(2)");

    const shown = await ui(`/ui/run?job=${id}`, { cookie });
    expect(shown.text).toContain("print(&#39;hi&#39;)\nprint(2)</textarea>");
    expect(shown.text).toContain(`data-stream="/ui/live/jobs/${id}/log"`);

    const fragment = await ui("/ui/run", { cookie, form, headers: { ...ORIGIN, "x-gridx-fragment": "1" } });
    expect(fragment.status).toBe(201);
    const second = fragment.headers.get("x-gridx-job")!;
    expect(second).not.toBe(id);
    expect(fragment.text).toMatch(/^<div class="run-output"/);
    expect(fragment.text).toContain(`data-live="/ui/live/runs/${second}"`);

    const bad = await ui("/ui/run", { cookie, form: { ...form, timeout_s: "0" }, headers: ORIGIN });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain("The job was not submitted: limits.timeout_s");
    expect(bad.text).toContain("print(&#39;hi&#39;)");
    const badFragment = await ui("/ui/run", { cookie, form: { ...form, script: "" }, headers: { ...ORIGIN, "x-gridx-fragment": "1" } });
    expect(badFragment.status).toBe(400);
    expect(badFragment.text).toContain("the script is empty");
  });

  it("lists workers with capabilities, slots and heartbeat; an admin drains and undrains, a user cannot", async () => {
    const admin = await signIn();
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool), { name: "dash-w3", slots: 2, caps: caps({ labels: { zone: "lab" }, os: "Debian 12", runtimes: ["runc", "gvisor"], egress: true }) });
    const page = await ui(`/ui/workers?pool=${pool}`, { cookie: admin });
    expect(page.status).toBe(200);
    expect(page.text).toContain("dash-w3");
    expect(page.text).toContain("0 / 2");
    expect(page.text).toContain("8.0 GiB");
    expect(page.text).toContain("zone=lab");
    expect(page.text).toContain("Debian 12 · x64");
    expect(page.text).toContain("runc, gvisor · egress");
    expect(page.text).toMatch(/ago<\/time>/);
    expect(page.text).toContain(`action="/ui/workers/${workerId}/drain"`);

    const drained = await ui(`/ui/workers/${workerId}/drain`, { cookie: admin, form: {}, headers: ORIGIN });
    expect(drained.status).toBe(303);
    expect(drained.headers.get("location")).toBe("/ui/workers?done=drained");
    const workers = async () => (await api(`/v1/workers?pool=${pool}`)).json.workers[0];
    expect((await workers()).status).toBe("draining");
    expect((await ui(`/ui/live/workers?pool=${pool}`, { cookie: admin })).text).toContain(`action="/ui/workers/${workerId}/undrain"`);
    expect((await ui(`/ui/workers/${workerId}/undrain`, { cookie: admin, form: {}, headers: ORIGIN })).status).toBe(303);
    expect((await workers()).status).toBe("online");

    const user = await signIn((await userToken()).token);
    const userPage = await ui(`/ui/workers?pool=${pool}`, { cookie: user });
    expect(userPage.text).toContain("dash-w3");
    expect(userPage.text).not.toContain("/drain");
    const refused = await ui(`/ui/workers/${workerId}/drain`, { cookie: user, form: {}, headers: ORIGIN });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain("Could not drain the worker");
    expect((await workers()).status).toBe("online");
    agent.close();
  });

  it("shows each pool's queue depth, running jobs and charts on the overview", async () => {
    const cookie = await signIn();
    const pool = uniquePool();
    await submit({ pool });
    await submit({ pool });
    const page = await ui("/ui", { cookie });
    expect(page.status).toBe(200);
    const card = page.text.slice(page.text.indexOf(`Pool ${pool}`));
    expect(card).toMatch(/<dt>Queue depth<\/dt><dd>2<\/dd>/);
    expect(card).toMatch(/<dt>Running<\/dt><dd>0/);
    expect(card).toContain('<svg viewBox="0 0 300 64"');
    expect(card).toContain("0 jobs finished in the last 60 minutes");
    const live = await ui("/ui/live/overview", { cookie });
    expect(live.text).toContain(`Pool ${pool}`);
  });

  it("renders a not-found page for unknown dashboard paths once signed in", async () => {
    const cookie = await signIn();
    const res = await ui("/ui/nowhere", { cookie });
    expect(res.status).toBe(404);
    expect(res.text).toContain("There is no dashboard page at /ui/nowhere");
  });
});

describe("API for the dashboard: pools and attempts", () => {
  it("GET /v1/pools counts unfinished jobs, workers and slots per pool", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool), { name: "dash-w4", slots: 3 });
    await submit({ pool });
    await agent.next("assign_job");
    await submit({ pool, requirements: { labels: { never: "matches" } } });
    const res = await api("/v1/pools", { token: (await userToken()).token });
    expect(res.status).toBe(200);
    expect(res.json.pools.find((p: any) => p.pool === pool)).toEqual({
      pool,
      queued: 1,
      assigned: 1,
      running: 0,
      workers: { online: 1, draining: 0, offline: 0 },
      slots: { total: 3, in_use: 1 },
      policy: "first-idle",
    });
    expect((await api("/v1/pools", { token: null })).status).toBe(401);
    agent.close();
  });

  it("GET /v1/pools/:pool/stats buckets finished jobs and the median wait", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool), { name: "dash-w5" });
    await runJob(agent, pool, 0);
    await runJob(agent, pool, 2);
    const res = await api(`/v1/pools/${pool}/stats`);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ pool, bucket_s: 60, finished: 2, started: 2 });
    expect(res.json.series).toHaveLength(60);
    expect(res.json.series.reduce((n: number, b: any) => n + b.completed, 0)).toBe(1);
    expect(res.json.series.reduce((n: number, b: any) => n + b.failed, 0)).toBe(1);
    expect(res.json.median_wait_ms).toBeGreaterThanOrEqual(0);
    expect(Date.parse(res.json.to) - Date.parse(res.json.from)).toBe(3_600_000);

    const day = await api(`/v1/pools/${pool}/stats?minutes=1440`);
    expect(day.json.bucket_s).toBe(1440);
    const bad = await api(`/v1/pools/${pool}/stats?minutes=0`);
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/^minutes:/);
    expect((await api("/v1/pools/Not_A_Pool/stats")).status).toBe(400);
    agent.close();
  });

  it("GET /v1/jobs/:id/attempts lists every try with its worker and timestamps", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await FakeAgent.join(await agentToken(pool), { name: "dash-w6" });
    const job = await runJob(agent, pool, 0);
    const res = await api(`/v1/jobs/${job.id}/attempts`, { token: (await userToken()).token });
    expect(res.status).toBe(200);
    expect(res.json.attempts).toHaveLength(1);
    expect(res.json.attempts[0]).toMatchObject({ attempt: 1, worker_id: workerId, worker_name: "dash-w6", status: "finished", exit_code: 0, failure_reason: null });
    expect(["queued_at", "assigned_at", "started_at", "finished_at"].filter((k) => Number.isNaN(Date.parse(res.json.attempts[0][k])))).toEqual([]);
    expect((await api("/v1/jobs/j_nope/attempts")).status).toBe(404);
    agent.close();
  });
});

describe("dashboard: pure pieces", () => {
  it("tells a retried job's story in time order: worker lost, queued again, finished", () => {
    const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
    const job = { id: "j_1", pool: "default", status: "completed", created_at: t(0), finished_at: t(40), failure_message: null } as any;
    const attempts: Parameters<typeof timeline>[1] = [
      { attempt: 1, worker_id: "w_1", worker_name: "lab-1", status: "lost", queued_at: t(0), assigned_at: t(1), started_at: t(2), finished_at: t(20), exit_code: null, failure_reason: "worker_lost", usage: null },
      { attempt: 2, worker_id: "w_2", worker_name: null, status: "finished", queued_at: t(20), assigned_at: t(21), started_at: t(25), finished_at: t(40), exit_code: 0, failure_reason: null, usage: null },
    ];
    expect(timeline(job, attempts).map((e) => [e.at.slice(17, 19), e.label, e.detail ?? ""])).toEqual([
      ["00", "Submitted", "to pool default"],
      ["01", "Attempt 1 assigned", "to worker lab-1, 1.0 s after queueing"],
      ["02", "Attempt 1 started", "waited 2.0 s in all"],
      ["20", "Attempt 1 ended", "lost its worker after 18 s"],
      ["20", "Queued again for attempt 2", ""],
      ["21", "Attempt 2 assigned", "to worker w_2, 1.0 s after queueing"],
      ["25", "Attempt 2 started", "waited 5.0 s in all"],
      ["40", "Attempt 2 ended", "exit code 0 after 15 s"],
      ["40", "Job completed", ""],
    ]);
  });

  it("writes durations short and whole", () => {
    expect([850, 12_300, 60_000, 245_000, 3_600_000, 7_380_000, 3 * 86_400_000 + 4 * 3_600_000].map(formatDuration)).toEqual([
      "850 ms",
      "12 s",
      "1 min",
      "4 min 5 s",
      "1 h",
      "2 h 3 min",
      "3 d 4 h",
    ]);
  });
});

describe("dashboard: sessions of their own", () => {
  it("signing in opens a session: the cookie holds its secret, never the token, and it lasts DASHBOARD_SESSION_H", async () => {
    const u = await userToken();
    const res = await ui("/ui/login", { form: { token: u.token, next: "/ui" }, headers: { ...ORIGIN, "user-agent": "dash-test-browser/1.0", "cf-connecting-ip": "198.51.100.7" } });
    expect(res.status).toBe(303);
    const set = res.headers.get("set-cookie")!;
    expect(set).toMatch(/^gridx_session=gxs_[A-Za-z0-9_-]{43};/);
    expect(set).not.toContain(u.token);
    expect(set).toMatch(/Max-Age=43200/);
    const cookie = /^(gridx_session=[^;]+)/.exec(set)![1]!;

    const listed = await api("/v1/sessions", { token: u.token });
    expect(listed.status).toBe(200);
    expect(listed.json.sessions).toHaveLength(1);
    const [s] = listed.json.sessions;
    expect(Object.keys(s).sort()).toEqual(["created_at", "current", "expires_at", "id", "ip", "last_used_at", "user", "user_agent", "user_id"]);
    expect(s).toMatchObject({ user: u.user, user_id: u.userId, ip: "198.51.100.7", user_agent: "dash-test-browser/1.0", current: false });
    expect(s.id).toMatch(/^ses_/);
    expect(Date.parse(s.expires_at) - Date.parse(s.created_at)).toBe(12 * 3_600_000);
    expect(listed.text).not.toContain(secretOf(cookie));
    // Called with the session's own secret, the list marks it as the caller's.
    expect((await api("/v1/sessions", { token: secretOf(cookie) })).json.sessions[0]).toMatchObject({ id: s.id, current: true });

    const page = await ui("/ui/jobs", { cookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain(`<span class="who">${u.user}</span>`);

    const events = (await api(`/v1/audit?action=session.start&actor=${u.user}`)).json.events;
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actor: u.user, target: s.id, ip: "198.51.100.7" });
    expect(JSON.stringify(events)).not.toContain(secretOf(cookie));

    // A session's secret is no token to sign in with.
    const again = await ui("/ui/login", { form: { token: secretOf(cookie) }, headers: ORIGIN });
    expect(again.status).toBe(401);
  });

  it("a session never outlives the token it was opened with", async () => {
    const u = await userToken({ expires_in_s: 600 });
    await signIn(u.token);
    const [s] = (await api("/v1/sessions", { token: u.token })).json.sessions;
    expect(Date.parse(s.expires_at) - Date.parse(s.created_at)).toBeLessThanOrEqual(600_000);
  });

  it("signing out revokes the session server-side: the old cookie is sent to sign in and its secret gets 401", async () => {
    const u = await userToken();
    const cookie = await signIn(u.token);
    const id = await sessionIdOf(cookie);
    expect(await admitted(cookie)).toBe(true);

    const out = await ui("/ui/logout", { cookie, form: {}, headers: ORIGIN });
    expect(out.status).toBe(303);
    expect(out.headers.get("location")).toBe("/ui/login?signed_out=1");
    expect(await admitted(cookie)).toBe(false);
    expect((await ui("/ui/live/jobs", { cookie })).status).toBe(401);
    expect((await api("/v1/me", { token: secretOf(cookie) })).status).toBe(401);
    expect((await api("/v1/sessions", { token: u.token })).json.sessions).toEqual([]);
    const ended = (await api(`/v1/audit?action=session.end&actor=${u.user}`)).json.events;
    expect(ended.map((e: any) => e.target)).toEqual([id]);
    // The token itself still works: signing out ends the session, not the token.
    expect((await api("/v1/me", { token: u.token })).status).toBe(200);
  });

  it("revoking the API token ends the sessions opened with it", async () => {
    const u = await userToken();
    const cookie = await signIn(u.token);
    expect(await admitted(cookie)).toBe(true);
    expect((await api(`/v1/api-tokens/${u.tokenId}`, { method: "DELETE" })).status).toBe(204);
    expect(await admitted(cookie)).toBe(false);
    expect((await api("/v1/sessions", { token: secretOf(cookie) })).status).toBe(401);
  });

  it("GET and DELETE /v1/sessions are the caller's own; another user's session is 404; the admin sees and revokes any", async () => {
    const a = await userToken();
    const b = await userToken();
    const aCookie = await signIn(a.token);
    const bCookie = await signIn(b.token);
    const bId = await sessionIdOf(bCookie);

    const mine = (await api("/v1/sessions", { token: a.token })).json.sessions;
    expect(mine.map((s: any) => s.user)).toEqual([a.user]);
    const refused = await api(`/v1/sessions/${bId}`, { method: "DELETE", token: a.token });
    expect(refused.status).toBe(404);
    expect(refused.json.error.message).toBe(`no session ${bId}`);
    expect(await admitted(bCookie)).toBe(true);

    const all = (await api("/v1/sessions")).json.sessions.map((s: any) => s.id);
    expect(all).toEqual(expect.arrayContaining([bId, await sessionIdOf(aCookie)]));
    expect((await api(`/v1/sessions/${bId}`, { method: "DELETE" })).status).toBe(204);
    expect(await admitted(bCookie)).toBe(false);
    expect((await api(`/v1/sessions/${bId}`, { method: "DELETE" })).status).toBe(404);
    expect(await admitted(aCookie)).toBe(true);

    expect((await api("/v1/sessions", { token: await agentToken(uniquePool()) })).status).toBe(403);
    expect((await api("/v1/sessions", { token: null })).status).toBe(401);
  });

  it("the sessions page lists the user's sessions, signs another out, and signing out this one goes to sign in", async () => {
    const u = await userToken();
    const here = await signIn(u.token, { "user-agent": "here-browser" });
    const there = await signIn(u.token, { "user-agent": "there-browser" });
    const thereId = await sessionIdOf(there);

    const page = await ui("/ui/sessions", { cookie: here });
    expect(page.status).toBe(200);
    expect(page.text.match(/<tr data-session="ses_/g)).toHaveLength(2);
    expect(page.text.match(/this browser<\/small>/g)).toHaveLength(1);
    expect(page.text).toContain("there-browser");
    expect(page.text).toContain(`action="/ui/sessions/${thereId}/revoke"`);
    expect(page.text).not.toContain(secretOf(here));

    const revoke = await ui(`/ui/sessions/${thereId}/revoke`, { cookie: here, form: {}, headers: ORIGIN });
    expect(revoke.status).toBe(303);
    expect(revoke.headers.get("location")).toBe("/ui/sessions?done=session_revoked");
    expect(await admitted(there)).toBe(false);
    expect(await admitted(here)).toBe(true);

    const other = await signIn((await userToken()).token);
    expect((await ui(`/ui/sessions/${await sessionIdOf(other)}/revoke`, { cookie: here, form: {}, headers: ORIGIN })).status).toBe(404);
    expect(await admitted(other)).toBe(true);

    const self = await ui(`/ui/sessions/${await sessionIdOf(here)}/revoke`, { cookie: here, form: {}, headers: ORIGIN });
    expect(self.status).toBe(303);
    expect(self.headers.get("location")).toBe("/ui/login?signed_out=1");
    expect(self.headers.get("set-cookie")).toMatch(/gridx_session=;.*Max-Age=0/i);
    expect(await admitted(here)).toBe(false);
  });
});

describe("dashboard: projects", () => {
  /** The cookie pair a response set for the remembered project. */
  const projectCookie = (res: { headers: Headers }) => /gridx_project=[^;]*/.exec(res.headers.get("set-cookie") ?? "")?.[0];

  it("switches project: the jobs list and its fragment show only that project's jobs, with name, tags and who submitted", async () => {
    const p1 = await newProject();
    const p2 = await newProject();
    const u = await userToken({ project: p1, role: "member" });
    await api(`/v1/projects/${p2}/members/${u.user}`, { method: "PUT", json: { role: "viewer" } });
    const pool = uniquePool();
    const job1 = (await api("/v1/jobs", { method: "POST", token: u.token, json: { kind: "python", python: { script: "print(1)" }, pool, project: p1, name: "nightly <b>", tags: ["team=ml"] } })).json;
    const job2 = (await submit({ pool, project: p2 })).json;
    const cookie = await signIn(u.token);

    const all = await ui(`/ui/jobs?pool=${pool}`, { cookie });
    expect(all.text).toContain(job1.id);
    expect(all.text).toContain(job2.id);
    expect(all.text).toContain(`<option value="${p1}">${p1} (member)</option>`);
    expect(all.text).toContain(`<option value="${p2}">${p2} (viewer)</option>`);

    const one = await ui(`/ui/jobs?project=${p1}&pool=${pool}`, { cookie });
    expect(one.status).toBe(200);
    expect(one.text).toContain(job1.id);
    expect(one.text).not.toContain(job2.id);
    expect(one.text).toContain(`<option value="${p1}" selected="">`);
    expect(one.text).toContain("<strong>nightly &lt;b&gt;</strong>");
    expect(one.text).toContain("<code>team=ml</code>");
    expect(one.text).toContain(`<td data-label="By">${u.user}</td>`);
    expect(one.text).toContain(`data-live="/ui/live/jobs?project=${p1}&amp;pool=${pool}"`);
    const remembered = projectCookie(one)!;
    expect(remembered).toBe(`gridx_project=${p1}`);

    // The choice is remembered across pages, and "all projects" forgets it.
    const again = await ui(`/ui/jobs?pool=${pool}`, { cookie: `${cookie}; ${remembered}` });
    expect(again.text).toContain(job1.id);
    expect(again.text).not.toContain(job2.id);
    const cleared = await ui(`/ui/jobs?project=&pool=${pool}`, { cookie: `${cookie}; ${remembered}` });
    expect(cleared.text).toContain(job2.id);
    expect(projectCookie(cleared)).toBe("gridx_project=");

    const live = await ui(`/ui/live/jobs?project=${p2}&pool=${pool}`, { cookie });
    expect(live.text).toContain(job2.id);
    expect(live.text).not.toContain(job1.id);

    // A project the user is not in is no choice: nothing of it shows, and it is not remembered.
    const foreign = await newProject();
    const hidden = (await submit({ pool, project: foreign })).json;
    const stranger = await ui(`/ui/jobs?project=${foreign}&pool=${pool}`, { cookie: `${cookie}; ${remembered}` });
    expect(stranger.text).not.toContain(`value="${foreign}"`);
    expect(stranger.text).not.toContain(hidden.id);
    expect(projectCookie(stranger)).toBe("gridx_project=");
  });

  it("a job page shows its project, name, tags and submitter; a viewer has no cancel button and is refused; another project's job is the dashboard's 404", async () => {
    const project = await newProject();
    const member = await userToken({ project, role: "member" });
    const viewer = await userToken({ project, role: "viewer" });
    const outsider = await userToken({ project: await newProject(), role: "member" });
    const job = (await api("/v1/jobs", { method: "POST", token: member.token, json: { kind: "python", python: { script: "print(1)" }, pool: uniquePool(), project, name: "train", tags: ["run=7"] } })).json;

    const own = await ui(`/ui/jobs/${job.id}`, { cookie: await signIn(member.token) });
    expect(own.status).toBe(200);
    expect(own.text).toContain('<span class="subtitle">train</span>');
    expect(own.text).toContain("<code>run=7</code>");
    expect(own.text).toContain(`<dd id="job-submitted-by">${member.user}</dd>`);
    expect(own.text).toContain(`<dt>Project</dt><dd>${project}</dd>`);
    expect(own.text).toContain(`action="/ui/jobs/${job.id}/cancel"`);

    const viewerCookie = await signIn(viewer.token);
    const read = await ui(`/ui/jobs/${job.id}`, { cookie: viewerCookie });
    expect(read.status).toBe(200);
    expect(read.text).toContain(job.id);
    expect(read.text).not.toContain("Cancel job");
    expect((await ui(`/ui/live/jobs/${job.id}`, { cookie: viewerCookie })).text).not.toContain("Cancel job");
    const cancel = await ui(`/ui/jobs/${job.id}/cancel`, { cookie: viewerCookie, form: {}, headers: ORIGIN });
    expect(cancel.status).toBe(403);
    expect(cancel.text).toContain("Could not cancel: this needs the member role");
    expect((await api(`/v1/jobs/${job.id}`)).json.status).toBe("queued");

    const hidden = await ui(`/ui/jobs/${job.id}`, { cookie: await signIn(outsider.token) });
    expect(hidden.status).toBe(404);
    expect(hidden.text).toContain("Not found");
    expect(hidden.text).not.toContain("train");
  });

  it("the run form submits into the chosen project with a name and tags; a viewer gets no run button and is refused", async () => {
    const p1 = await newProject();
    const p2 = await newProject();
    const u = await userToken({ project: p1, role: "member" });
    await api(`/v1/projects/${p2}/members/${u.user}`, { method: "PUT", json: { role: "member" } });
    const cookie = await signIn(u.token);

    const form = await ui(`/ui/run?project=${p2}`, { cookie });
    const select = /<select id="run-project".*?<\/select>/.exec(form.text)![0];
    expect(select).toContain(`<option value="${p1}">${p1}</option>`);
    expect(select).toContain(`<option value="${p2}" selected="">${p2}</option>`);
    const res = await ui("/ui/run", { cookie, form: { script: "print(1)", project: p2, pool: uniquePool(), name: "from the form", tags: "a=1, b=2", timeout_s: "30", memory_mb: "256" }, headers: ORIGIN });
    expect(res.status).toBe(303);
    const id = /^\/ui\/run\?job=(.+)$/.exec(res.headers.get("location")!)![1]!;
    expect((await api(`/v1/jobs/${id}`)).json).toMatchObject({ project: p2, name: "from the form", tags: ["a=1", "b=2"], submitted_by: u.user });
    const shown = await ui(`/ui/run?job=${id}`, { cookie });
    expect(shown.text).toContain('value="from the form"');
    expect(shown.text).toContain('value="a=1, b=2"');

    const viewer = await userToken({ project: p1, role: "viewer" });
    const viewerCookie = await signIn(viewer.token);
    const page = await ui("/ui/run", { cookie: viewerCookie });
    expect(page.status).toBe(200);
    expect(page.text).not.toContain('id="run-button"');
    expect(page.text).toContain("Running jobs needs the member role");
    const refused = await ui("/ui/run", { cookie: viewerCookie, form: { script: "print(1)", project: p1, pool: uniquePool(), timeout_s: "30", memory_mb: "256" }, headers: ORIGIN });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain("The job was not submitted: this needs the member role");
  });

  it("the project page shows members, quotas and usage; a non-member gets 404; a viewer cannot manage; an owner adds members and secrets", async () => {
    const project = await newProject({ quotas: { max_queued_jobs: 5 } });
    const owner = await userToken({ project, role: "owner" });
    const viewer = await userToken({ project, role: "viewer" });
    const outsider = await userToken({ role: null });
    await submit({ pool: uniquePool(), project });
    const href = `/ui/projects/${project}`;
    const ownerCookie = await signIn(owner.token);

    const page = await ui(href, { cookie: ownerCookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain(`<tr data-member="${owner.user}"><td data-label="User">${owner.user}</td><td data-label="Role">owner</td>`);
    expect(page.text).toContain(`<tr data-member="${viewer.user}"><td data-label="User">${viewer.user}</td><td data-label="Role">viewer</td>`);
    expect(page.text).toContain('<td data-label="What">Queued jobs</td><td data-label="In use">1</td><td data-label="Quota">5</td>');
    expect(page.text).toContain('id="member-form"');
    expect(page.text).toContain('id="secret-form"');

    expect((await ui(href, { cookie: await signIn(outsider.token) })).status).toBe(404);
    expect((await ui("/ui/projects", { cookie: await signIn(outsider.token) })).text).toContain("You are not a member of any project yet");

    const viewerCookie = await signIn(viewer.token);
    const viewed = await ui(href, { cookie: viewerCookie });
    expect(viewed.status).toBe(200);
    expect(viewed.text).not.toContain('id="member-form"');
    expect(viewed.text).not.toContain('id="secret-form"');
    expect(viewed.text).not.toContain("/remove");
    const put = await ui(`${href}/members`, { cookie: viewerCookie, form: { user: outsider.user, role: "member" }, headers: ORIGIN });
    expect(put.status).toBe(403);
    expect(put.text).toContain("Could not save the member: this needs the owner role");
    const members = async () => (await api(`/v1/projects/${project}/members`)).json.members.map((m: any) => `${m.user}:${m.role}`).sort();
    expect(await members()).toEqual([`${owner.user}:owner`, `${viewer.user}:viewer`].sort());

    const added = await ui(`${href}/members`, { cookie: ownerCookie, form: { user: outsider.user, role: "member" }, headers: ORIGIN });
    expect(added.status).toBe(303);
    expect(added.headers.get("location")).toBe(`${href}?done=member_saved`);
    expect(await members()).toEqual([`${owner.user}:owner`, `${viewer.user}:viewer`, `${outsider.user}:member`].sort());
    const unknown = await ui(`${href}/members`, { cookie: ownerCookie, form: { user: "nobody-at-all", role: "member" }, headers: ORIGIN });
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain("Could not save the member: no user nobody-at-all");

    const saved = await ui(`${href}/secrets`, { cookie: ownerCookie, form: { name: "api-key", value: "s3cr3t-value" }, headers: ORIGIN });
    expect(saved.status).toBe(303);
    const withSecret = await ui(`${href}?done=secret_saved`, { cookie: ownerCookie });
    expect(withSecret.text).toContain("<code>api-key</code>");
    expect(withSecret.text).not.toContain("s3cr3t-value");
    expect((await ui(href, { cookie: viewerCookie })).text).toContain("<code>api-key</code>");
    expect((await ui(`${href}/secrets/api-key/delete`, { cookie: viewerCookie, form: {}, headers: ORIGIN })).status).toBe(403);
    expect((await ui(`${href}/secrets/api-key/delete`, { cookie: ownerCookie, form: {}, headers: ORIGIN })).status).toBe(303);
    expect((await api(`/v1/projects/${project}/secrets`)).json.secrets).toEqual([]);

    expect((await ui(`${href}/members/${outsider.user}/remove`, { cookie: ownerCookie, form: {}, headers: ORIGIN })).headers.get("location")).toBe(`${href}?done=member_removed`);
    expect(await members()).toEqual([`${owner.user}:owner`, `${viewer.user}:viewer`].sort());
  });
});

describe("dashboard: workflows", () => {
  const beats: ReturnType<typeof setInterval>[] = [];
  afterEach(() => beats.splice(0).forEach(clearInterval));

  /** A fake agent that keeps its worker alive (WORKER_TIMEOUT_S is 2 in tests), so a slow run loses no attempt. */
  async function liveAgent(pool: string, name: string) {
    const { agent } = await FakeAgent.join(await agentToken(pool), { name });
    beats.push(setInterval(() => agent.closed || agent.sendRaw(HEARTBEAT_FRAME), 300));
    return agent;
  }

  /** Takes the next assignment and ends it with `exitCode` and `usage`; returns the job id and its attempt. */
  async function finish(agent: FakeAgent, exitCode: number, usage: { cpu_s: number; peak_memory_mb: number; gpu_s: number; wall_s: number }) {
    const { payload } = await agent.next("assign_job", 5000);
    const ref = { job_id: payload.job_id as string, attempt: payload.attempt as number };
    agent.send({ type: "job_started", payload: ref });
    agent.send({ type: "job_result", payload: { ...ref, exit_code: exitCode, failure_reason: exitCode === 0 ? null : "exit_code", message: null, usage } });
    await agent.next("result_ack");
    return { ...ref, index: payload.spec.array?.index as number | undefined };
  }

  it("a job page shows why it waits, each attempt's outcome and usage, the job's usage and its dependencies, linked", async () => {
    const project = await newProject();
    const member = await userToken({ project, role: "member" });
    const pool = uniquePool();
    const submitAs = (body: Record<string, unknown>) => api("/v1/jobs", { method: "POST", token: member.token, json: { kind: "python", python: { script: "print(1)" }, pool, project, ...body } });
    const parent = (await submitAs({ name: "parent", retry: { on: ["exit_code"], max: 1, backoff_s: 0 } })).json;
    const child = (await submitAs({ name: "child", depends_on: [{ job: parent.id }] })).json;
    const cookie = await signIn(member.token);

    const waiting = await ui(`/ui/jobs/${child.id}`, { cookie });
    const reason = (await api(`/v1/jobs/${child.id}`)).json.pending_reason as string;
    expect(reason).toContain(parent.id);
    expect(waiting.text).toContain(`<dd id="job-pending">${reason}</dd>`);
    expect(waiting.text).toContain(`<a href="/ui/jobs/${parent.id}"><code>${parent.id}</code></a>`);

    const agent = await liveAgent(pool, "dash-wf1");
    expect(await finish(agent, 3, { cpu_s: 1.5, peak_memory_mb: 100, gpu_s: 0, wall_s: 2 })).toMatchObject({ job_id: parent.id, attempt: 1 });
    expect(await finish(agent, 0, { cpu_s: 2.5, peak_memory_mb: 300, gpu_s: 0, wall_s: 3 })).toMatchObject({ job_id: parent.id, attempt: 2 });
    await waitForJob(parent.id, (j) => j.status === "completed");

    const page = await ui(`/ui/jobs/${parent.id}`, { cookie });
    expect(page.text).toContain('<dd id="job-attempt">2 of at most 3</dd>');
    expect(page.text).toContain("<dd>exit_code; up to 1, after 0 ms doubling</dd>");
    expect(page.text).toContain('<dd id="job-usage">4.0 s CPU · 300 MiB peak · 0 ms GPU · 5.0 s wall</dd>');
    const rows = [...page.text.matchAll(/<tr data-attempt="(\d)">(.*?)<\/tr>/g)].map((m) => [m[1], m[2]!.replace(/<[^>]+>/g, "|").replace(/\|+/g, "|")]);
    expect(rows).toEqual([
      ["1", expect.stringMatching(/^\|1\|dash-wf1\|exit 3\|.*\|1\.5 s CPU · 100 MiB peak · 0 ms GPU · 2\.0 s wall\|$/)],
      ["2", expect.stringMatching(/^\|2\|dash-wf1\|exit 0\|.*\|2\.5 s CPU · 300 MiB peak · 0 ms GPU · 3\.0 s wall\|$/)],
    ]);
    expect(page.text).toContain("Waited for by");
    expect(page.text).toContain(`<a href="/ui/jobs/${child.id}"><code>${child.id}</code></a>`);
    agent.close();
  });

  it("reruns a job from its page as a member; a viewer has no rerun button and is refused", async () => {
    const project = await newProject();
    const member = await userToken({ project, role: "member" });
    const viewer = await userToken({ project, role: "viewer" });
    const job = (await api("/v1/jobs", { method: "POST", token: member.token, json: { kind: "python", python: { script: "print(1)" }, pool: uniquePool(), project } })).json;
    await api(`/v1/jobs/${job.id}/cancel`, { method: "POST", token: member.token });

    const cookie = await signIn(member.token);
    expect((await ui(`/ui/jobs/${job.id}`, { cookie })).text).toContain(`<form method="post" action="/ui/jobs/${job.id}/rerun"><button type="submit">Rerun</button></form>`);
    const res = await ui(`/ui/jobs/${job.id}/rerun`, { cookie, form: {}, headers: ORIGIN });
    expect(res.status).toBe(303);
    const copyId = /^\/ui\/jobs\/([^?]+)\?done=rerun$/.exec(res.headers.get("location") ?? "")?.[1];
    expect(copyId).toMatch(/^j_/);
    expect(copyId).not.toBe(job.id);
    expect((await api(`/v1/jobs/${copyId}`)).json).toMatchObject({ rerun_of: job.id, status: "queued", project });
    const copyPage = await ui(res.headers.get("location")!, { cookie });
    expect(copyPage.text).toContain("Rerun submitted");
    expect(copyPage.text).toContain(`<dt>Rerun of</dt><dd><a href="/ui/jobs/${job.id}">${job.id}</a></dd>`);

    const viewerCookie = await signIn(viewer.token);
    const read = await ui(`/ui/jobs/${job.id}`, { cookie: viewerCookie });
    expect(read.status).toBe(200);
    expect(read.text).not.toContain(`/ui/jobs/${job.id}/rerun`);
    const refused = await ui(`/ui/jobs/${job.id}/rerun`, { cookie: viewerCookie, form: {}, headers: ORIGIN });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain("Could not rerun: this needs the member role");
    const outsider = await userToken({ project: await newProject(), role: "member" });
    expect((await ui(`/ui/jobs/${job.id}/rerun`, { cookie: await signIn(outsider.token), form: {}, headers: ORIGIN })).status).toBe(404);
    expect((await api(`/v1/jobs?project=${project}`, { token: member.token })).json.jobs).toHaveLength(2);
  });

  it("an array page shows progress by state and links the failed tasks; a member cancels it, a viewer cannot", async () => {
    const project = await newProject();
    const member = await userToken({ project, role: "member" });
    const viewer = await userToken({ project, role: "viewer" });
    const pool = uniquePool();
    const first = (await api("/v1/jobs", { method: "POST", token: member.token, json: { kind: "python", python: { script: "print(1)" }, pool, project, name: "shards", array: { count: 3 } } })).json;
    const arrayId = first.array_id as string;
    const agent = await liveAgent(pool, "dash-wf2");
    const failed = await finish(agent, 1, { cpu_s: 1, peak_memory_mb: 64, gpu_s: 0, wall_s: 1 });
    const running = await agent.next("assign_job", 5000);
    agent.send({ type: "job_started", payload: { job_id: running.payload.job_id, attempt: 1 } });
    await waitForJob(running.payload.job_id, (j) => j.status === "running");

    const cookie = await signIn(member.token);
    expect((await ui(`/ui/jobs/${first.id}`, { cookie })).text).toContain(`task 0 of <a href="/ui/arrays/${arrayId}">${arrayId}</a>`);
    const page = await ui(`/ui/arrays/${arrayId}`, { cookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain('<span class="subtitle">shards</span>');
    for (const [state, n] of [["queued", 1], ["running", 1], ["failed", 1]] as const) {
      expect(page.text).toContain(`<li data-state="${state}"><span class="badge s-${state}">${state}</span> ${n}</li>`);
      expect(page.text).toMatch(new RegExp(`<rect class="bar ${state}" x="[\\d.]+" y="0" width="333\\.3`));
    }
    expect(page.text).not.toContain('data-state="completed"');
    expect(page.text).toContain(`<li><a href="/ui/jobs/${failed.job_id}">task ${failed.index}</a></li>`);
    expect(page.text).toContain(`<form method="post" action="/ui/arrays/${arrayId}/cancel"`);

    const viewerCookie = await signIn(viewer.token);
    const read = await ui(`/ui/arrays/${arrayId}`, { cookie: viewerCookie });
    expect(read.status).toBe(200);
    expect(read.text).not.toContain("Cancel array");
    const refused = await ui(`/ui/arrays/${arrayId}/cancel`, { cookie: viewerCookie, form: {}, headers: ORIGIN });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain("Could not cancel the array: this needs the member role");
    expect((await api(`/v1/arrays/${arrayId}`)).json.counts).toMatchObject({ queued: 1, running: 1, failed: 1 });

    const res = await ui(`/ui/arrays/${arrayId}/cancel`, { cookie, form: {}, headers: ORIGIN });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/ui/arrays/${arrayId}?done=array_canceled`);
    expect((await agent.next("cancel_job")).payload.job_id).toBe(running.payload.job_id);
    expect((await api(`/v1/arrays/${arrayId}`)).json).toMatchObject({ status: "failed", counts: { failed: 1, canceled: 2 } });
    const after = await ui(res.headers.get("location")!, { cookie });
    expect(after.text).toContain("Array canceled");
    expect(after.text).not.toContain("Cancel array");

    const outsider = await userToken({ project: await newProject(), role: "member" });
    expect((await ui(`/ui/arrays/${arrayId}`, { cookie: await signIn(outsider.token) })).status).toBe(404);
    agent.close();
  });

  it("the schedules page lists the readable schedules with cron, next run and paused; others' are not shown", async () => {
    const project = await newProject();
    const member = await userToken({ project, role: "member" });
    const create = (name: string, cron: string) =>
      api("/v1/schedules", { method: "POST", token: member.token, json: { name, cron, timezone: "UTC", job: { kind: "python", python: { script: "print(1)" }, project, pool: uniquePool() } } });
    const nightly = (await create("nightly", "0 3 * * *")).json;
    const weekly = (await create("weekly", "0 4 * * 1")).json;
    expect((await api(`/v1/schedules/${weekly.id}/pause`, { method: "POST", token: member.token })).status).toBe(200);

    const page = await ui(`/ui/schedules?project=${project}`, { cookie: await signIn(member.token) });
    expect(page.status).toBe(200);
    expect(page.text).toContain('<a href="/ui/schedules" aria-current="page">Schedules</a>');
    const row = (id: string) => new RegExp(`<tr data-schedule="${id}">(.*?)</tr>`).exec(page.text)?.[1] ?? "";
    expect(row(nightly.id)).toContain("<strong>nightly</strong>");
    expect(row(nightly.id)).toContain("<code>0 3 * * *</code>");
    expect(row(nightly.id)).toContain(`<time datetime="${nightly.next_run_at}"`);
    expect(row(nightly.id)).toContain("active");
    expect(row(weekly.id)).toContain("<code>0 4 * * 1</code>");
    expect(row(weekly.id)).toContain("paused");

    const outsider = await userToken({ project: await newProject(), role: "member" });
    const other = await ui("/ui/schedules", { cookie: await signIn(outsider.token) });
    expect(other.status).toBe(200);
    expect(other.text).not.toContain(nightly.id);
    expect(other.text).toContain("No schedules");
  });
});

describe("dashboard: interactive sessions", () => {
  it("a running job's page has an Open button per declared port, a viewer's too; it opens a one-time link to the port in a new tab", async () => {
    const project = await newProject();
    const member = await userToken({ project, role: "member" });
    const viewer = await userToken({ project, role: "viewer" });
    const pool = uniquePool();
    const job = (await api("/v1/jobs", { method: "POST", token: member.token, json: { kind: "jupyter", pool, project, ports: [{ port: 6006 }] } })).json;
    const cookie = await signIn(viewer.token);
    const form = (port: number) => `<form method="post" action="/ui/jobs/${job.id}/ports/${port}/open" target="_blank" rel="noopener">`;
    expect((await ui(`/ui/jobs/${job.id}`, { cookie })).text).not.toContain("/ports/");

    const { agent } = await FakeAgent.join(await agentToken(pool), { name: "dash-ports" });
    const beat = setInterval(() => agent.closed || agent.sendRaw(HEARTBEAT_FRAME), 300);
    try {
      const { payload } = await agent.next("assign_job", 5000);
      agent.send({ type: "job_started", payload: { job_id: job.id, attempt: payload.attempt } });
      await waitForJob(job.id, (j) => j.status === "running");
      const page = (await ui(`/ui/jobs/${job.id}`, { cookie })).text;
      expect(page).toContain(`${form(8888)}<button type="submit" class="primary">Open Jupyter</button></form>`);
      expect(page).toContain(`${form(6006)}<button type="submit" class="primary">Open port 6006</button></form>`);
      expect((await ui(`/ui/live/jobs/${job.id}`, { cookie })).text).toContain(form(8888));

      const open = await ui(`/ui/jobs/${job.id}/ports/8888/open`, { cookie, form: {}, headers: ORIGIN });
      expect(open.status).toBe(303);
      const location = open.headers.get("location") ?? "";
      expect(location).toMatch(new RegExp(`^${BASE}/v1/jobs/${job.id}/ports/8888/\\?gridx_link=[^&]+$`));
      const followed = await SELF.fetch(location, { redirect: "manual" });
      expect(followed.status).toBe(302);
      expect(followed.headers.get("set-cookie")).toMatch(/^gridx_port=/);

      const undeclared = await ui(`/ui/jobs/${job.id}/ports/9999/open`, { cookie, form: {}, headers: ORIGIN });
      expect(undeclared.status).toBe(404);
      expect(undeclared.text).toContain(`job ${job.id} declares no port 9999`);
    } finally {
      clearInterval(beat);
      agent.close();
    }
  });
});
