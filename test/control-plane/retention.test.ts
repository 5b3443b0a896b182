import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { sweepRetention } from "../../control-plane/src/retention/sweep.ts";
import { api, newProject, submit, uniquePool, userToken } from "./helpers.ts";

const DAY = 24 * 3600 * 1000;
const spec = (project: string, inputs: unknown[] = []) => JSON.stringify({ pool: "default", project, env: {}, inputs, depends_on: [] });

/**
 * A job that finished `daysAgo` days ago (written straight into D1, as the coordinator leaves
 * one), with an attempt, log rows in D1 and a segment in R2, an artifact and the archived log.
 */
async function finishedJob(project: string, daysAgo: number, opts: { status?: string; arrayId?: string } = {}) {
  const id = `j_${crypto.randomUUID().replaceAll("-", "").slice(0, 26)}`;
  const at = Date.now() - daysAgo * DAY;
  const keys = [`logs/${id}/1/0-0.jsonl`, `artifacts/${id}/1/out`, `artifacts/${id}/1/joblog`];
  await env.DB.batch([
    env.DB.prepare(
      "INSERT INTO jobs (id, pool, kind, project, spec, status, priority, max_retries, attempt, created_by, created_at, queued_at, finished_at, array_id) VALUES (?1, 'default', 'python', ?2, ?3, ?4, 0, 0, 1, 'admin', ?5, ?5, ?5, ?6)",
    ).bind(id, project, spec(project), opts.status ?? "completed", at, opts.arrayId ?? null),
    env.DB.prepare("INSERT INTO attempts (job_id, attempt, worker_id, status, cpus_milli, memory_mb, gpu_indices, queued_at, assigned_at, finished_at) VALUES (?1, 1, 'w_x', 'finished', 1000, 256, '[]', ?2, ?2, ?2)").bind(id, at),
    env.DB.prepare(`INSERT INTO log_chunks (job_id, attempt, seq, stream, lines, bytes) VALUES (?1, 1, 1, 'stdout', '[[0, 0, "hi"]]', 2)`).bind(id),
    env.DB.prepare("INSERT INTO log_segments (job_id, attempt, first_seq, last_seq, key, bytes, lines) VALUES (?1, 1, 0, 0, ?2, 2, 1)").bind(id, keys[0]),
    env.DB.prepare("INSERT INTO artifacts (job_id, attempt, name, size, sha256, key, created_at) VALUES (?1, 1, 'out', 1, 'x', ?2, ?4), (?1, 1, '.gridx/job.log', 1, 'y', ?3, ?4)").bind(id, keys[1], keys[2], at),
  ]);
  for (const key of keys) await env.BUCKET.put(key, "x");
  return { id, keys };
}

const count = async (table: string, column: string, id: string) => (await env.DB.prepare(`SELECT count(*) AS n FROM ${table} WHERE ${column} = ?1`).bind(id).first<{ n: number }>())!.n;
const stored = async (key: string) => (await env.BUCKET.head(key)) !== null;
/** What D1 and R2 still hold of a job. */
async function left(job: { id: string; keys: string[] }) {
  return {
    job: await count("jobs", "id", job.id),
    attempts: await count("attempts", "job_id", job.id),
    events: await count("job_events", "job_id", job.id),
    chunks: await count("log_chunks", "job_id", job.id),
    segments: await count("log_segments", "job_id", job.id),
    artifacts: (await env.DB.prepare("SELECT name FROM artifacts WHERE job_id = ?1 ORDER BY name").bind(job.id).all<{ name: string }>()).results.map((r) => r.name),
    objects: await Promise.all(job.keys.map(stored)),
  };
}
const whole = { job: 1, attempts: 1, events: 1, chunks: 1, segments: 1, artifacts: [".gridx/job.log", "out"], objects: [true, true, true] };
const gone = { job: 0, attempts: 0, events: 0, chunks: 0, segments: 0, artifacts: [], objects: [false, false, false] };
const logsGone = { ...whole, chunks: 0, segments: 0, artifacts: ["out"], objects: [false, true, false] };
const artifactsGone = { ...whole, artifacts: [".gridx/job.log"], objects: [true, false, true] };

describe("retention sweep", () => {
  it("deletes expired jobs, then artifacts, then logs, at most RETENTION_SWEEP_BATCH jobs a run, and keeps young and unfinished ones", async () => {
    const project = await newProject();
    const old = [await finishedJob(project, 100), await finishedJob(project, 95, { status: "failed" }), await finishedJob(project, 91, { status: "canceled" })];
    const middle = await finishedJob(project, 40);
    const young = await finishedJob(project, 1);
    const running = await finishedJob(project, 100, { status: "running" });
    await env.DB.prepare("UPDATE jobs SET finished_at = NULL WHERE id = ?1").bind(running.id).run();
    const swept = { ...env, RETENTION_SWEEP_BATCH: "2" };

    expect(await sweepRetention(swept)).toMatchObject({ jobs: 2, artifacts: 0, logs: 0, objects: 6 });
    expect(await left(old[0]!)).toEqual(gone);
    expect(await left(old[1]!)).toEqual(gone);
    expect(await left(old[2]!)).toEqual(whole);

    // The last old job, and with what is left of the batch the 40-day job's artifacts.
    expect(await sweepRetention(swept)).toMatchObject({ jobs: 1, artifacts: 1, logs: 0 });
    expect(await left(old[2]!)).toEqual(gone);
    expect(await left(middle)).toEqual(artifactsGone);

    expect(await sweepRetention(swept)).toMatchObject({ jobs: 0, artifacts: 0, logs: 1 });
    expect(await left(middle)).toEqual({ ...artifactsGone, chunks: 0, segments: 0, artifacts: [], objects: [false, false, false] });
    expect(await sweepRetention(swept)).toMatchObject({ jobs: 0, artifacts: 0, logs: 0, objects: 0 });
    expect(await left(young)).toEqual(whole);
    expect(await left(running)).toEqual(whole);
  });

  it("follows a project's own retention, shown with which days are defaults", async () => {
    const project = await newProject();
    const owner = await userToken({ project, role: "owner" });
    const member = await userToken({ project, role: "member" });
    expect((await api(`/v1/projects/${project}`, { token: owner.token })).json.retention).toEqual({ logs_days: 30, artifacts_days: 30, jobs_days: 90, defaults: ["logs_days", "artifacts_days", "jobs_days"] });
    expect((await api(`/v1/projects/${project}`, { method: "PATCH", token: member.token, json: { retention: { jobs_days: 1 } } })).status).toBe(403);
    const bad = await api(`/v1/projects/${project}`, { method: "PATCH", token: owner.token, json: { retention: { jobs_days: -1 } } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.json.error)).toContain("jobs_days");
    const patched = await api(`/v1/projects/${project}`, { method: "PATCH", token: owner.token, json: { retention: { logs_days: 0, artifacts_days: 5, jobs_days: 200 } } });
    expect(patched.status).toBe(200);
    expect(patched.json.retention).toEqual({ logs_days: 0, artifacts_days: 5, jobs_days: 200, defaults: [] });

    const kept = await finishedJob(project, 100);
    const shortLived = await newProject();
    await api(`/v1/projects/${shortLived}`, { method: "PATCH", json: { retention: { jobs_days: 2 } } });
    const expired = await finishedJob(shortLived, 3);
    await sweepRetention(env);
    // 100 days old: its artifacts (5 days) go, its logs (forever) and the job (200 days) stay.
    expect(await left(kept)).toEqual(artifactsGone);
    expect(await left(expired)).toEqual(gone);
  });

  it("keeps an expired job that an unfinished job depends on, or reads an artifact of, and its array while a task runs", async () => {
    const project = await newProject();
    const parent = await finishedJob(project, 100);
    const read = await finishedJob(project, 100);
    const task = await finishedJob(project, 100, { arrayId: "a_retention" });
    const child = `j_child${crypto.randomUUID().slice(0, 8)}`;
    const now = Date.now();
    await env.DB.batch([
      env.DB.prepare("INSERT INTO jobs (id, pool, kind, project, spec, status, priority, max_retries, created_by, created_at, queued_at, hold) VALUES (?1, 'default', 'python', ?2, ?3, 'queued', 0, 0, 'admin', ?4, ?4, 'deps')").bind(
        child,
        project,
        spec(project, [{ artifact: { job: read.id, name: "out" }, path: "in" }]),
        now,
      ),
      env.DB.prepare("INSERT INTO job_deps (child, parent, parent_kind, condition) VALUES (?1, ?2, 'job', 'completed')").bind(child, parent.id),
      env.DB.prepare("INSERT INTO jobs (id, pool, kind, project, spec, status, priority, max_retries, created_by, created_at, queued_at, array_id) VALUES (?1, 'default', 'python', ?2, ?3, 'running', 0, 0, 'admin', ?4, ?4, 'a_retention')").bind(`${child}t`, project, spec(project), now),
    ]);
    await sweepRetention(env);
    // Their logs go; the jobs and their artifacts stay for what needs them.
    expect(await left(parent)).toEqual(logsGone);
    expect(await left(read)).toEqual(logsGone);
    expect(await left(task)).toEqual({ ...whole, chunks: 0, segments: 0, artifacts: [], objects: [false, false, false] });

    await env.DB.prepare("UPDATE jobs SET status = 'completed', finished_at = ?2 WHERE id IN (?1, ?3)").bind(child, now, `${child}t`).run();
    await sweepRetention(env);
    expect(await left(parent)).toEqual(gone);
    expect(await left(read)).toEqual(gone);
    expect(await left(task)).toEqual(gone);
  });
});

describe("DELETE /v1/jobs/:id", () => {
  it("deletes a finished job and everything it left for a member, audited; 404 for outsiders, 403 for viewers, 409 while unfinished", async () => {
    const project = await newProject();
    const member = await userToken({ project, role: "member" });
    const viewer = await userToken({ project, role: "viewer" });
    const outsider = await userToken({ project: await newProject(), role: "member" });
    const job = await finishedJob(project, 0);

    expect((await api(`/v1/jobs/${job.id}`, { method: "DELETE", token: outsider.token })).status).toBe(404);
    expect((await api(`/v1/jobs/${job.id}`, { method: "DELETE", token: viewer.token })).status).toBe(403);
    expect(await left(job)).toEqual(whole);

    expect((await api(`/v1/jobs/${job.id}`, { method: "DELETE", token: member.token })).status).toBe(204);
    expect(await left(job)).toEqual(gone);
    expect((await api(`/v1/jobs/${job.id}`, { token: member.token })).status).toBe(404);
    expect((await api(`/v1/jobs/${job.id}/logs`, { token: member.token })).status).toBe(404);
    expect((await api(`/v1/jobs/${job.id}`, { method: "DELETE", token: member.token })).status).toBe(404);
    const audit = await env.DB.prepare("SELECT actor, detail FROM audit_events WHERE action = 'job.delete' AND target = ?1").bind(job.id).first<{ actor: string; detail: string }>();
    expect(audit?.actor).toBe(member.user);
    expect(JSON.parse(audit!.detail)).toEqual({ status: "completed", objects: 3 });

    const queued = await submit({ project, pool: uniquePool() });
    expect(queued.status).toBe(201);
    const refused = await api(`/v1/jobs/${queued.json.id}`, { method: "DELETE", token: member.token });
    expect(refused.status).toBe(409);
    expect(refused.json.error.message).toContain("is queued");
  });

  it("is a 409 saying why while an unfinished job depends on it", async () => {
    const project = await newProject();
    const parent = await finishedJob(project, 0);
    const child = await submit({ project, pool: uniquePool(), depends_on: [{ job: parent.id, condition: "finished" }] });
    expect(child.status).toBe(201);
    const refused = await api(`/v1/jobs/${parent.id}`, { method: "DELETE" });
    expect(refused.status).toBe(409);
    expect(refused.json.error.message).toBe(`job ${parent.id} is still needed: unfinished jobs depend on it`);
  });
});
