import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Faults, faultyD1 } from "../../control-plane/src/coordinator/faults.ts";
import { createDb } from "../../control-plane/src/db/client.ts";
import { getSchedule, insertSchedule, type ScheduleRow } from "../../control-plane/src/db/schedules.ts";
import { scheduleClockOf } from "../../control-plane/src/workflows/schedule-clock.ts";
import { tickClock } from "../../control-plane/src/workflows/schedule-settings.ts";
import { fireSchedule, tickKey } from "../../control-plane/src/workflows/schedule-tick.ts";
import { pollUntil } from "../helpers/poll.ts";
import { api, sleep, uniquePool, userToken } from "./helpers.ts";

// vitest.config.mts sets SCHEDULE_MINUTE_S=1: one cron minute is a second, so `* * * * *` fires every second.

const job = (project: string, pool = uniquePool()) => ({ project, pool, kind: "python" as const, python: { script: "print(1)" } });

async function create(token: string, body: Record<string, unknown>) {
  return api("/v1/schedules", { method: "POST", token, json: body });
}

async function runsOf(id: string, token?: string) {
  const res = await api(`/v1/schedules/${id}/runs?limit=200`, { token });
  expect(res.status).toBe(200);
  return res.json.runs as { tick_at: string; outcome: string; job_id: string | null; message: string | null }[];
}

const waitForRuns = (id: string, pred: (runs: Awaited<ReturnType<typeof runsOf>>) => boolean, what: string) => pollUntil(() => runsOf(id), pred, { timeoutMs: 10_000, intervalMs: 100, what });

async function jobsOf(scheduleId: string) {
  const { results } = await env.DB.prepare("SELECT id, idempotency_key AS key FROM jobs WHERE schedule_id = ?1").bind(scheduleId).all<{ id: string; key: string }>();
  return results;
}

describe("schedules API", () => {
  it("creates, reads, lists, changes and deletes a schedule", async () => {
    const m = await userToken({ project: `pr-${crypto.randomUUID().slice(0, 6)}` });
    const made = await create(m.token, { name: "nightly", cron: "0 3 * * *", job: job(m.project), overlap: "allow" });
    expect(made.status).toBe(201);
    const s = made.json;
    expect(s).toMatchObject({ project: m.project, name: "nightly", cron: "0 3 * * *", timezone: "UTC", overlap: "allow", paused: false, last_run_at: null, submitted_by: m.user, created_by: m.user });
    expect(s.id).toMatch(/^sch_/);
    expect(Date.parse(s.next_run_at)).toBeGreaterThan(Date.now());
    expect(s.job).toEqual(job(m.project, s.job.pool));

    expect((await api(`/v1/schedules/${s.id}`, { token: m.token })).json).toEqual(s);
    const listed = await api(`/v1/schedules?project=${m.project}`, { token: m.token });
    expect(listed.json.schedules.map((x: { id: string }) => x.id)).toEqual([s.id]);

    const patched = await api(`/v1/schedules/${s.id}`, { method: "PATCH", token: m.token, json: { name: "hourly", cron: "@hourly", timezone: "Europe/Berlin" } });
    expect(patched.status).toBe(200);
    expect(patched.json).toMatchObject({ name: "hourly", cron: "@hourly", timezone: "Europe/Berlin" });
    expect(new Date(patched.json.next_run_at).getUTCSeconds()).toBe(0);

    expect((await api(`/v1/schedules/${s.id}`, { method: "DELETE", token: m.token })).status).toBe(204);
    expect((await api(`/v1/schedules/${s.id}`, { token: m.token })).status).toBe(404);
    const audit = await api(`/v1/audit?project=${m.project}`);
    expect(audit.json.events.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(["schedule.create", "schedule.update", "schedule.delete"]));
  });

  it.each([
    [{ cron: "61 * * * *" }, "cron", "cron: minute field 61 is out of 0-59"],
    [{ cron: "* * *" }, "cron", "cron: expected 5 fields"],
    [{ timezone: "Mars/Olympus" }, "timezone", 'timezone: "Mars/Olympus" is not an IANA time zone'],
    [{ overlap: "queue" }, "overlap", "overlap:"],
    [{ job: { kind: "python", python: { script: "x" }, limits: { timeout_s: 0 } } }, "job.limits.timeout_s", "job.limits.timeout_s:"],
    [{ name: "a b" }, "name", "name:"],
  ])("refuses %j naming the field", async (change, field, message) => {
    const m = await userToken();
    const res = await create(m.token, { name: "bad", cron: "* * * * *", job: job(m.project), ...change });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe(field);
    expect(res.json.error.message).toContain(message);
  });

  it("refuses a job naming $N, which only a batch's items can", async () => {
    const m = await userToken();
    const res = await create(m.token, { name: "dollar", cron: "@daily", job: { ...job(m.project), depends_on: [{ job: "$0" }] } });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe("job.depends_on.0.job");
  });

  it("keeps a schedule's job in its own project, and hides other projects'", async () => {
    const a = await userToken({ project: `pa-${crypto.randomUUID().slice(0, 6)}` });
    const b = await userToken({ project: `pb-${crypto.randomUUID().slice(0, 6)}` });
    const elsewhere = await create(a.token, { name: "x", cron: "@daily", job: job(b.project) });
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.json.error.field).toBe("job.project");
    const mismatch = await create(a.token, { name: "x", project: b.project, cron: "@daily", job: job(a.project) });
    expect(mismatch.status).toBe(400);
    expect(mismatch.json.error.field).toBe("job.project");

    const s = (await create(a.token, { name: "x", cron: "@daily", job: job(a.project) })).json;
    const moved = await api(`/v1/schedules/${s.id}`, { method: "PATCH", token: a.token, json: { job: job(b.project) } });
    expect(moved.status).toBe(400);
    expect(moved.json.error.field).toBe("job.project");
    expect((await create(a.token, { name: "x", cron: "@daily", job: job(a.project) })).status).toBe(409);

    expect((await api(`/v1/schedules/${s.id}`, { token: b.token })).status).toBe(404);
    expect((await api(`/v1/schedules/${s.id}/pause`, { method: "POST", token: b.token })).status).toBe(404);
    expect((await api(`/v1/schedules?project=${a.project}`, { token: b.token })).json.schedules).toEqual([]);
    expect((await api("/v1/schedules", { token: b.token })).json.schedules).toEqual([]);
  });

  it("lets viewers read and only members change", async () => {
    const m = await userToken({ project: `pv-${crypto.randomUUID().slice(0, 6)}` });
    const v = await userToken({ project: m.project, role: "viewer" });
    expect((await create(v.token, { name: "v", cron: "@daily", job: job(m.project) })).status).toBe(403);
    const s = (await create(m.token, { name: "m", cron: "@daily", job: job(m.project) })).json;
    expect((await api(`/v1/schedules/${s.id}`, { token: v.token })).status).toBe(200);
    expect((await api(`/v1/schedules/${s.id}/runs`, { token: v.token })).status).toBe(200);
    for (const [method, path] of [["POST", "/pause"], ["POST", "/resume"], ["DELETE", ""], ["PATCH", ""]] as const) {
      const res = await api(`/v1/schedules/${s.id}${path}`, { method, token: v.token, ...(method === "PATCH" ? { json: { name: "z" } } : {}) });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.json.error.message).toContain("member role");
    }
  });
});

describe("firing (test clock: a cron minute is a second)", () => {
  it("submits one job per tick, as its submitter, and keeps going across a clock restart", async () => {
    const m = await userToken({ project: `pf-${crypto.randomUUID().slice(0, 6)}` });
    const s = (await create(m.token, { name: "every", cron: "* * * * *", job: job(m.project), overlap: "allow" })).json;
    await waitForRuns(s.id, (r) => r.length >= 1, "the first run");
    // Thrown away mid-stream, as an eviction or a deploy would.
    await scheduleClockOf(env).injectFaults({ reset: true });
    const runs = await waitForRuns(s.id, (r) => r.filter((x) => x.outcome === "submitted").length >= 4, "runs after the restart");
    const jobs = await jobsOf(s.id);
    const submitted = runs.filter((r) => r.outcome === "submitted");
    // Every tick at most once: one job per run, each under its own tick's key.
    expect(new Set(runs.map((r) => r.tick_at)).size).toBe(runs.length);
    expect(new Set(submitted.map((r) => r.job_id)).size).toBe(submitted.length);
    for (const r of submitted) expect(jobs.find((j) => j.id === r.job_id)?.key).toBe(tickKey(Date.parse(r.tick_at)));
    const job0 = (await api(`/v1/jobs/${submitted[0]!.job_id}`, { token: m.token })).json;
    expect(job0).toMatchObject({ project: m.project, submitted_by: m.user, status: "queued" });
    const shown = (await api(`/v1/schedules/${s.id}`, { token: m.token })).json;
    expect(Date.parse(shown.last_run_at)).toBeGreaterThanOrEqual(Date.parse(runs[0]!.tick_at));
  });

  it("skips a tick while the schedule's previous job has not finished (overlap: skip)", async () => {
    const m = await userToken({ project: `po-${crypto.randomUUID().slice(0, 6)}` });
    // No agent serves the pool, so the first job stays queued.
    const s = (await create(m.token, { name: "skip", cron: "* * * * *", job: job(m.project) })).json;
    const runs = await waitForRuns(s.id, (r) => r.length >= 3, "three runs");
    const [first, ...later] = [...runs].reverse();
    expect(first).toMatchObject({ outcome: "submitted" });
    for (const r of later) expect(r).toMatchObject({ outcome: "skipped", job_id: null, message: `job ${first!.job_id} of this schedule has not finished (overlap: skip)` });
    expect(await jobsOf(s.id)).toHaveLength(1);
  });

  it("stops while paused, and resumes from the next tick after now", async () => {
    const m = await userToken({ project: `pp-${crypto.randomUUID().slice(0, 6)}` });
    const s = (await create(m.token, { name: "pause", cron: "* * * * *", job: job(m.project), overlap: "allow" })).json;
    await waitForRuns(s.id, (r) => r.length >= 1, "the first run");
    const paused = await api(`/v1/schedules/${s.id}/pause`, { method: "POST", token: m.token });
    expect(paused.json).toMatchObject({ paused: true, next_run_at: null });
    // A round that read the schedule before the pause may still finish its tick.
    await sleep(1200);
    const before = (await runsOf(s.id)).length;
    // Asserting that nothing happens needs a wait: three ticks of the test clock.
    await sleep(3000);
    expect((await runsOf(s.id)).length).toBe(before);

    const t = Date.now();
    const resumed = await api(`/v1/schedules/${s.id}/resume`, { method: "POST", token: m.token });
    expect(resumed.json.paused).toBe(false);
    const next = Date.parse(resumed.json.next_run_at);
    expect(next).toBeGreaterThan(t);
    expect(next).toBeLessThanOrEqual(t + 1000);
    const after = await waitForRuns(s.id, (r) => r.length > before, "a run after resuming");
    expect(Date.parse(after[0]!.tick_at)).toBeGreaterThanOrEqual(next);
  });

  it("records a refused run when the submitter is no longer a member", async () => {
    const m = await userToken({ project: `pr-${crypto.randomUUID().slice(0, 6)}` });
    const s = (await create(m.token, { name: "gone", cron: "* * * * *", job: job(m.project), overlap: "allow" })).json;
    expect((await api(`/v1/projects/${m.project}/members/${m.user}`, { method: "DELETE" })).status).toBe(204);
    const runs = await waitForRuns(s.id, (r) => r.some((x) => x.outcome === "refused"), "a refused run");
    expect(runs.find((x) => x.outcome === "refused")!.message).toContain(`its submitter ${m.user} is no longer a member`);
  });
});

describe("fireSchedule", () => {
  const clock = tickClock(1);

  /** A schedule the clock leaves alone (paused), fired here by hand. */
  async function handFired(overlap: "skip" | "allow" = "allow") {
    const m = await userToken({ project: `ph-${crypto.randomUUID().slice(0, 6)}` });
    const now = Date.now();
    const row: ScheduleRow = {
      id: `sch_test${crypto.randomUUID().slice(0, 8)}`,
      project: m.project,
      name: "hand",
      cron: "* * * * *",
      timezone: "UTC",
      job: job(m.project),
      overlap,
      paused: true,
      nextRunAt: Math.floor(now / 1000) * 1000,
      lastRunAt: null,
      submittedBy: m.user,
      createdBy: m.user,
      createdAt: now,
      updatedAt: now,
    };
    await insertSchedule(createDb(env.DB), row);
    return row;
  }
  const ctxOf = (db = createDb(env.DB)) => ({ db, env, waitUntil: () => {} });

  it("submits one job however often the same tick is fired", async () => {
    const row = await handFired();
    const now = row.nextRunAt! + 100;
    await fireSchedule(ctxOf(), clock, row, now);
    await fireSchedule(ctxOf(), clock, row, now);
    const runs = await runsOf(row.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ outcome: "submitted", tick_at: new Date(row.nextRunAt!).toISOString() });
    expect((await jobsOf(row.id)).map((j) => j.id)).toEqual([runs[0]!.job_id]);
  });

  it("delays a tick whose record failed to write, and neither loses nor doubles it", async () => {
    const row = await handFired();
    const faults = new Faults();
    faults.set({ failNext: 1, match: 'insert into "schedule_runs"' });
    const now = row.nextRunAt! + 100;
    await expect(fireSchedule(ctxOf(createDb(faultyD1(env.DB, faults))), clock, row, now)).rejects.toThrow('insert into "schedule_runs"');
    expect(await jobsOf(row.id)).toHaveLength(1);
    expect(await runsOf(row.id)).toEqual([]);
    // The retry comes three ticks late: the due tick's job is recorded, and only the latest tick runs besides.
    await fireSchedule(ctxOf(), clock, row, now + 3000);
    const runs = await runsOf(row.id);
    const jobs = await jobsOf(row.id);
    expect(runs.map((r) => r.tick_at)).toEqual([new Date(row.nextRunAt! + 3000).toISOString(), new Date(row.nextRunAt!).toISOString()]);
    expect(runs[1]!.job_id).toBe(jobs.find((j) => j.key === tickKey(row.nextRunAt!))!.id);
    expect(runs[0]!.message).toBe("2 earlier ticks were missed while the schedule could not run; only this, the latest, ran");
    expect(jobs).toHaveLength(2);
  });

  it("moves the schedule on only from the tick it was read at", async () => {
    const row = await handFired();
    const db = createDb(env.DB);
    await db.$client.prepare("UPDATE schedules SET paused = 0, next_run_at = ?2 WHERE id = ?1").bind(row.id, row.nextRunAt! + 3_600_000).run();
    await fireSchedule(ctxOf(), clock, { ...row, paused: false }, row.nextRunAt! + 100);
    // An edit moved it meanwhile: the edit's next_run_at stands.
    expect((await getSchedule(db, row.id))!.nextRunAt).toBe(row.nextRunAt! + 3_600_000);
    await db.$client.prepare("UPDATE schedules SET paused = 1 WHERE id = ?1").bind(row.id).run();
  });
});
