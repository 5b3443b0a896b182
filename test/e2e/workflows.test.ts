import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readResponse } from "../helpers/http.ts";
import { pollUntil } from "../helpers/poll.ts";
import { freePort, issueAgentToken, startAgent, type AgentProcess } from "../../scripts/local-grid.ts";
import { api, cp, isDone, launchOnlineAgent, ownControlPlane, submit, uniqueName, waitForJob } from "./helpers.ts";

const SLOTS = 4;

/** What GET `path` answers once `pred` holds. */
const waitFor = (path: string, pred: (body: any) => boolean, timeoutMs = 60_000) => pollUntil(async () => (await api(path)).json, pred, { timeoutMs, intervalMs: 200, what: path });

/** A job's artifact's bytes, through the presigned URL its download redirects to. */
async function artifactText(jobId: string, name: string): Promise<string> {
  const res = await fetch(`${cp().url}/v1/jobs/${jobId}/artifacts/${name}`, { headers: { authorization: `Bearer ${cp().adminToken}` }, redirect: "manual" });
  expect(res.status).toBe(302);
  return (await fetch(res.headers.get("location")!)).text();
}

/** A small dataset uploaded through its presigned URL, ready. */
async function uploadDataset(name: string, text: string) {
  const bytes = Buffer.from(text);
  const created = await api("/v1/datasets", { method: "POST", json: { name, size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") } });
  expect(created.status).toBe(201);
  expect((await fetch(created.json.upload.url, { method: "PUT", body: bytes })).ok).toBe(true);
  expect((await api(`/v1/datasets/${created.json.id}/complete`, { method: "POST", json: {} })).json.status).toBe("ready");
}

describe("workflows through the real grid", () => {
  const pool = uniqueName("wf");
  const python = (script: string, extra: Record<string, unknown> = {}) => ({ kind: "python", pool, python: { script }, ...extra });
  let agent: AgentProcess;

  beforeAll(async () => {
    agent = await launchOnlineAgent({ pool, name: uniqueName("wf-node"), slots: SLOTS, extraArgs: ["--prestart", String(SLOTS)] });
  });

  afterAll(async () => {
    await agent?.stop("SIGTERM");
  });

  it("runs every index of a 100-task array exactly once", async () => {
    const script = "import os\nprint(os.environ['GRIDX_ARRAY_INDEX'], os.environ['GRIDX_ARRAY_COUNT'])";
    const first = await submit(python(script, { array: { count: 100 } }));
    const summary = await waitFor(`/v1/arrays/${first.array_id}`, (a) => a.counts.completed + a.counts.failed + a.counts.canceled === 100, 240_000);
    expect(summary).toMatchObject({ count: 100, status: "completed", counts: { completed: 100, failed: 0, canceled: 0, queued: 0, assigned: 0, running: 0 }, failed_indices: [] });

    const ids: string[] = [];
    for (let cursor = ""; ; ) {
      const page = (await api(`/v1/jobs?array=${first.array_id}&limit=200${cursor ? `&cursor=${cursor}` : ""}`)).json;
      ids.push(...page.jobs.map((j: any) => j.id));
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    expect(ids).toHaveLength(100);
    const tasks = await Promise.all(ids.map(async (id) => (await api(`/v1/jobs/${id}`)).json));
    for (const t of tasks) {
      // One attempt each, and the index the task saw is the one it was given.
      expect(t).toMatchObject({ status: "completed", attempt: 1, stdout: `${t.array_index} 100\n` });
      expect(t.attempts).toHaveLength(1);
    }
    const seen = tasks.map((t) => Number(t.stdout.split(" ")[0])).sort((a, b) => a - b);
    expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => i));
  }, 300_000);

  const stage1 = python("open('/work/output/a.txt', 'w').write('seed')");
  const stage2 = "open('/work/output/b.txt', 'w').write(open('/work/input/a.txt').read() + '>two')";
  const stage3 = "open('/work/output/c.txt', 'w').write(open('/work/input/b.txt').read() + '>three')";
  const fed = (script: string, parent: string, name: string) => python(script, { depends_on: [{ job: parent }], inputs: [{ artifact: { job: parent, name }, path: name }] });

  it("passes an artifact down a three-stage pipeline submitted one job at a time", async () => {
    const one = await submit(stage1);
    const two = await submit(fed(stage2, one.id, "a.txt"));
    const three = await submit(fed(stage3, two.id, "b.txt"));
    expect(three.pending_reason).toBe(`waiting for ${two.id}`);
    expect(await waitForJob(three.id, isDone)).toMatchObject({ status: "completed", parents: [{ job: two.id, status: "completed" }] });
    expect(await artifactText(three.id, "c.txt")).toBe("seed>two>three");
  });

  it("passes an artifact down a three-stage pipeline submitted as one batch with $N references", async () => {
    const res = await api("/v1/jobs/batch", { method: "POST", json: { jobs: [stage1, fed(stage2, "$0", "a.txt"), fed(stage3, "$1", "b.txt")] } });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ submitted: 3, refused: 0 });
    const [one, two, three] = res.json.results.map((r: any) => r.job);
    expect(two.depends_on).toEqual([{ job: one.id, condition: "completed" }]);
    expect(await waitForJob(three.id, isDone)).toMatchObject({ status: "completed" });
    expect((await api(`/v1/jobs/${three.id}`)).json.spec.inputs).toEqual([{ artifact: { job: two.id, name: "b.txt" }, path: "b.txt" }]);
    expect(await artifactText(three.id, "c.txt")).toBe("seed>two>three");
  });

  it("fails the dependent of a failed parent dependency_failed, naming it, without running it", async () => {
    const parent = await submit(python("import sys\nsys.exit(1)"));
    const child = await submit(python("print('must not run')", { depends_on: [{ job: parent.id }] }));
    expect(await waitForJob(parent.id, isDone)).toMatchObject({ status: "failed", failure_reason: "exit_code", exit_code: 1 });
    const failed = await waitForJob(child.id, isDone);
    expect(failed).toMatchObject({ status: "failed", failure_reason: "dependency_failed", attempt: 0, attempts: [], stdout: "" });
    expect(failed.failure_message).toContain(parent.id);
  });

  it("refuses a batch with a cycle as a whole, naming the field", async () => {
    const res = await api("/v1/jobs/batch", { method: "POST", json: { jobs: [python("1", { depends_on: [{ job: "$1" }] }), python("1", { depends_on: [{ job: "$0" }] })] } });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe("jobs.0.depends_on.0.job");
  });

  it("retries a failed attempt its policy names and keeps both attempts and their logs", async () => {
    const script = "import os, sys\nattempt = os.environ['GRIDX_ATTEMPT']\nprint('attempt', attempt)\nsys.exit(1 if attempt == '1' else 0)";
    const job = await submit(python(script, { retry: { on: ["exit_code"], max: 2, backoff_s: 1 } }));
    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "completed", attempt: 2, exit_code: 0, stdout: "attempt 2\n" });
    expect(done.attempts.map((a: any) => [a.attempt, a.exit_code])).toEqual([
      [1, 1],
      [2, 0],
    ]);
    const lines = (await api(`/v1/jobs/${job.id}/logs`)).json.lines.filter((l: any) => l.stream === "stdout");
    expect(lines.map((l: any) => [l.attempt, l.text])).toEqual([
      [1, "attempt 1"],
      [2, "attempt 2"],
    ]);
  });

  it("reports an attempt's CPU time and peak memory on the job, its attempt and the pool's stats", async () => {
    const script = "import time\nblock = b'x' * (100 * 1024 * 1024)\nt = time.process_time()\nwhile time.process_time() - t < 0.5:\n    pass\nprint(len(block))";
    const done = await waitForJob((await submit(python(script, { limits: { memory_mb: 512 } }))).id, isDone);
    expect(done).toMatchObject({ status: "completed", stdout: `${100 * 1024 * 1024}\n` });
    for (const usage of [done.usage, done.attempts[0].usage]) {
      expect(usage.cpu_s).toBeGreaterThan(0.2);
      expect(usage.peak_memory_mb).toBeGreaterThan(80);
      expect(usage.wall_s).toBeGreaterThan(0);
    }
    expect((await api(`/v1/pools/${pool}/stats`)).json.usage.attempts).toBeGreaterThanOrEqual(1);
  });

  it("gives each array task its own dataset through {index} in its inputs", async () => {
    const shard = uniqueName("shard");
    await uploadDataset(`${shard}-0.txt`, "rows of shard zero\n");
    await uploadDataset(`${shard}-1.txt`, "rows of shard one\n");
    const script = "import os\nprint(os.environ['GRIDX_ARRAY_INDEX'], open('/work/input/shard.txt').read().strip())";
    const first = await submit(python(script, { array: { count: 2 }, inputs: [{ dataset: `${shard}-{index}.txt`, path: "shard.txt" }] }));
    await waitFor(`/v1/arrays/${first.array_id}`, (a) => a.counts.completed + a.counts.failed === 2);
    const tasks = (await api(`/v1/jobs?array=${first.array_id}`)).json.jobs;
    const outputs = await Promise.all(tasks.map(async (t: any) => (await waitForJob(t.id, isDone)).stdout));
    expect(outputs.sort()).toEqual(["0 rows of shard zero\n", "1 rows of shard one\n"]);
  });
});

describe("a schedule on the test clock (one cron minute a second)", () => {
  it("fires once per tick, through a control-plane restart, and keeps firing after it", async () => {
    const dir = mkdtempSync(join(cp().stateDir, "schedules-"));
    const port = await freePort();
    let plane = await ownControlPlane(dir, port, { SCHEDULE_MINUTE_S: "1" });
    const call = async (path: string, init: { method?: string; json?: unknown } = {}) =>
      readResponse(await fetch(plane.url + path, { method: init.method, headers: { authorization: `Bearer ${plane.adminToken}`, "content-type": "application/json" }, body: init.json === undefined ? undefined : JSON.stringify(init.json) }));
    const pool = "ticks";
    const runs = async (id: string) => (await call(`/v1/schedules/${id}/runs?limit=200`)).json.runs as { tick_at: string; outcome: string; job_id: string | null }[];
    const runsUntil = (id: string, pred: (r: Awaited<ReturnType<typeof runs>>) => boolean) => pollUntil(() => runs(id), pred, { timeoutMs: 60_000, intervalMs: 200, what: `runs of ${id}` });
    const agent = startAgent({ url: plane.url, token: await issueAgentToken(plane, "ticker", pool), name: "ticker", stateDir: join(dir, "agent"), slots: 2 });
    try {
      const created = await call("/v1/schedules", { method: "POST", json: { name: "every-minute", cron: "* * * * *", overlap: "allow", job: { kind: "python", pool, python: { script: "print('tick')" } } } });
      expect(created.status).toBe(201);
      const id = created.json.id as string;
      const before = await runsUntil(id, (r) => r.length >= 3);
      expect(before.every((r) => r.outcome === "submitted" && r.job_id)).toBe(true);
      const ran = (await call(`/v1/jobs/${before.at(-1)!.job_id}`)).json;
      expect(ran.schedule_id).toBe(id);

      await plane.stop();
      const restartedAt = Date.now();
      plane = await ownControlPlane(dir, port, { SCHEDULE_MINUTE_S: "1" });
      await runsUntil(id, (r) => r.filter((x) => Date.parse(x.tick_at) > restartedAt).length >= 3);
      // Paused, so the jobs and the runs read below are of the same ticks.
      expect((await call(`/v1/schedules/${id}/pause`, { method: "POST" })).status).toBe(200);

      // Every job of the schedule is one tick's, and no tick has two.
      const jobs: { id: string; schedule_id: string | null }[] = [];
      for (let cursor = ""; ; ) {
        const page = (await call(`/v1/jobs?pool=${pool}&limit=200${cursor ? `&cursor=${cursor}` : ""}`)).json;
        jobs.push(...page.jobs);
        if (!page.next_cursor) break;
        cursor = page.next_cursor;
      }
      const after = await runs(id);
      const ticks = after.map((r) => r.tick_at);
      expect(new Set(ticks).size).toBe(ticks.length);
      expect(ticks.filter((t) => Date.parse(t) <= restartedAt).length).toBeGreaterThanOrEqual(before.length);
      const submitted = after.filter((r) => r.job_id).map((r) => r.job_id);
      const scheduled = jobs.filter((j) => j.schedule_id === id).map((j) => j.id);
      expect(new Set(submitted).size).toBe(submitted.length);
      expect(scheduled.sort()).toEqual([...submitted].sort());
      // The scheduled jobs ran on the agent.
      expect(await pollUntil(async () => (await call(`/v1/jobs/${ran.id}`)).json, (j) => j.status === "completed", { timeoutMs: 60_000, intervalMs: 200, what: `job ${ran.id}` })).toMatchObject({ stdout: "tick\n" });
    } finally {
      await agent.stop("SIGTERM");
      await plane.stop();
    }
  }, 180_000);
});
