import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { HEARTBEAT_FRAME } from "../../protocol/index.ts";
import { pollUntil } from "../helpers/poll.ts";
import { agentToken, api, FakeAgent, newProject, submit, uniquePool, userToken, waitForJob } from "./helpers.ts";
import { SseReader, type Received } from "./sse-reader.ts";

/*
 * Push, not poll: log followers and the events stream, served by the job's LogStream and the
 * project's EventHub objects, through workerd. The window and page bounds are cut small in
 * vitest.config.mts (LOG_D1_WINDOW_BYTES 128 KiB, LOG_SEGMENT_BYTES 32 KiB, LOG_PAGE_BYTES
 * 64 KiB, FOLLOW_MAX_S 3) so the moves to R2 and the resume happen in seconds.
 */

const line = (text: string, ts = 1) => ({ stream: "stdout" as const, text, ts });

async function runningJob(pool: string, agent: FakeAgent, body: Record<string, unknown> = {}) {
  const job = (await submit({ pool, ...body })).json;
  await agent.next("assign_job");
  agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1 } });
  await waitForJob(job.id, (j) => j.status === "running");
  return job as { id: string; project: string };
}

/** Heartbeats, for a test that outlasts WORKER_TIMEOUT_S (2 s here); returns the stop. */
function keepAlive(agent: FakeAgent): () => void {
  const timer = setInterval(() => agent.sendRaw(HEARTBEAT_FRAME), 500);
  return () => clearInterval(timer);
}

const finish = (agent: FakeAgent, jobId: string) => agent.send({ type: "job_result", payload: { job_id: jobId, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
const texts = (events: Received[]) => events.filter((e) => e.event === "log").map((e) => JSON.parse(e.data).text as string);

describe("log follow: pushed, exact across reconnects", () => {
  it("delivers lines while the job runs, and each line once across a reconnect in the middle of a batch", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = await runningJob(pool, agent);
    const first = await SseReader.open(`/v1/jobs/${job.id}/logs?follow=1`);
    agent.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 0, lines: [line("a"), line("b"), line("c")] } });
    const early = [await first.next(), await first.next(), await first.next()];
    expect(texts(early as Received[])).toEqual(["a", "b", "c"]);
    // The lines arrived while the job still runs: pushed, not read after the end.
    expect((await api(`/v1/jobs/${job.id}`)).json.status).toBe("running");
    agent.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 1, lines: [line("d"), line("e"), line("f")] } });
    const d = (await first.next())!;
    expect(JSON.parse(d.data).text).toBe("d");
    expect(d.id).toBe("1.1.0");
    await first.close();

    agent.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 2, lines: [line("g")] } });
    const again = await SseReader.open(`/v1/jobs/${job.id}/logs?follow=1`, { lastEventId: d.id });
    const before = await again.next();
    expect(JSON.parse(before!.data).text).toBe("e");
    finish(agent, job.id);
    const rest = [before!, ...(await again.until("end"))];
    expect(texts(rest)).toEqual(["e", "f", "g"]);
    expect(JSON.parse(rest.at(-1)!.data)).toMatchObject({ status: "completed", exit_code: 0 });
    expect(await again.next()).toBeNull();
    agent.close();
  });

  it("ends a follower of a job canceled while queued, with no line ever sent", async () => {
    const pool = uniquePool();
    const job = (await submit({ pool })).json;
    const follower = await SseReader.open(`/v1/jobs/${job.id}/logs?follow=1`);
    expect((await api(`/v1/jobs/${job.id}/cancel`, { method: "POST" })).status).toBe(200);
    const events = await follower.until("end");
    expect(events.map((e) => e.event)).toEqual(["end"]);
    expect(JSON.parse(events[0]!.data).status).toBe("canceled");
  });

  it("says `resume` with its cursor at the maximum duration, and the reader goes on from there", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const stop = keepAlive(agent);
    const job = await runningJob(pool, agent);
    agent.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 0, lines: [line("one")] } });
    const follower = await SseReader.open(`/v1/jobs/${job.id}/logs?follow=1`);
    const events = await follower.until("resume", 10_000);
    expect(texts(events)).toEqual(["one"]);
    // Quiet for longer than FOLLOW_KEEPALIVE_S (1 s): kept alive with comments.
    expect(follower.comments).toBeGreaterThan(0);
    // After the whole batch (storage brought it, so the cursor names the batch).
    expect(JSON.parse(events.at(-1)!.data)).toEqual({ after: "1.0" });
    expect(await follower.next()).toBeNull();
    agent.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq: 1, lines: [line("two")] } });
    finish(agent, job.id);
    const next = await SseReader.open(`/v1/jobs/${job.id}/logs?follow=1&after=1.0.0`);
    expect(texts(await next.until("end"))).toEqual(["two"]);
    stop();
    agent.close();
  });

  it("is refused to a user who cannot read the job's project", async () => {
    const pool = uniquePool();
    const job = (await submit({ pool })).json;
    const outsider = await userToken({ project: await newProject(), role: "member" });
    expect((await api(`/v1/jobs/${job.id}/logs?follow=1`, { token: outsider.token })).status).toBe(404);
    expect((await api(`/v1/events?job=${job.id}`, { token: outsider.token })).status).toBe(404);
  });
});

describe("logs: a bounded D1 window, the rest in R2, read as one log", () => {
  it("moves old batches to R2 segments, and pages and followers still read every line once, in order", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = await runningJob(pool, agent);
    const stop = keepAlive(agent);
    const kib = "x".repeat(1000);
    const sent: string[] = [];
    // 20 batches of 24 lines of ~1 KiB: about 480 KiB, well past the 128 KiB window.
    for (let seq = 0; seq < 20; seq++) {
      const lines = Array.from({ length: 24 }, (_, i) => line(`${seq}:${i}:${kib}`));
      sent.push(...lines.map((l) => l.text));
      agent.send({ type: "job_log", payload: { job_id: job.id, attempt: 1, seq, lines } });
    }
    finish(agent, job.id);
    await waitForJob(job.id, (j) => j.status === "completed");
    const held = async () => (await env.DB.prepare("SELECT coalesce(sum(bytes), 0) AS n FROM log_chunks WHERE job_id = ?1").bind(job.id).first<{ n: number }>())!.n;
    await pollUntil(held, (n) => n <= 128 * 1024, { what: "the D1 window", timeoutMs: 10_000, intervalMs: 100 });
    const segments = await env.DB.prepare("SELECT key FROM log_segments WHERE job_id = ?1 ORDER BY first_seq").bind(job.id).all<{ key: string }>();
    expect(segments.results.length).toBeGreaterThan(0);
    expect(await env.BUCKET.head(segments.results[0]!.key)).not.toBeNull();

    const paged: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const res = await api(`/v1/jobs/${job.id}/logs${after ? `?after=${after}` : ""}`);
      // A page is bounded: LOG_PAGE_BYTES (64 KiB) plus at most one batch, or one segment (32 KiB and a batch).
      expect(res.text.length).toBeLessThan(64 * 1024 + 16 * 1024);
      paged.push(...res.json.lines.map((l: { text: string }) => l.text));
      if (!res.json.more) break;
      after = res.json.next_cursor;
    }
    // Compared by count and by a digest of the order, so a failure does not print half a MiB.
    expect(paged.length).toBe(sent.length);
    expect(paged.map((t) => t.slice(0, 6)).join(",")).toBe(sent.map((t) => t.slice(0, 6)).join(","));
    expect(paged.join("") === sent.join("")).toBe(true);

    const follower = await SseReader.open(`/v1/jobs/${job.id}/logs?follow=1`);
    const followed = texts(await follower.until("end"));
    expect(followed.length).toBe(sent.length);
    expect(followed.join("") === sent.join("")).toBe(true);

    const tail = await api(`/v1/jobs/${job.id}/logs?tail=20000`);
    const tailed = tail.json.lines.map((l: { text: string }) => l.text.slice(0, 6));
    expect(tailed).toEqual(sent.slice(-tailed.length).map((t) => t.slice(0, 6)));
    expect(tailed.length).toBeGreaterThanOrEqual(24);
    expect(tail.json.lines.length).toBeLessThanOrEqual(48);
    stop();
    agent.close();
  });
});

describe("GET /v1/events: every state change, pushed, in order", () => {
  it("delivers a job's changes in order, and resumes after Last-Event-ID without repeats", async () => {
    const project = await newProject();
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const stream = await SseReader.open(`/v1/events?project=${project}`);
    const job = await runningJob(pool, agent, { project });
    finish(agent, job.id);
    const seen: Received[] = [];
    while (seen.length < 4) seen.push((await stream.next())!);
    const events = seen.map((e) => JSON.parse(e.data));
    expect(events.map((e) => e.type)).toEqual(["job.queued", "job.assigned", "job.running", "job.completed"]);
    expect(events.every((e) => e.job_id === job.id && e.project === project)).toBe(true);
    expect(seen.map((e) => Number(e.id))).toEqual([...seen.map((e) => Number(e.id))].sort((a, b) => a - b));
    expect(events[3]).toMatchObject({ status: "completed", exit_code: 0, attempt: 1 });
    await stream.close();

    const resumed = await SseReader.open(`/v1/events?job=${job.id}`, { lastEventId: seen[1]!.id });
    expect([(await resumed.next())!, (await resumed.next())!].map((e) => JSON.parse(e.data).type)).toEqual(["job.running", "job.completed"]);
    await resumed.close();
    agent.close();
  });

  it("serves a member its only project without naming it, and asks anyone else to name one", async () => {
    const project = await newProject();
    const member = await userToken({ project, role: "viewer" });
    const stream = await SseReader.open("/v1/events", { token: member.token });
    const job = (await submit({ pool: uniquePool(), project })).json;
    const queued = JSON.parse((await stream.next())!.data);
    expect(queued).toMatchObject({ type: "job.queued", job_id: job.id });
    await stream.close();
    const res = await api("/v1/events");
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe("project");
    expect((await api("/v1/events?after=abc")).json.error.field).toBe("after");
  });
});
