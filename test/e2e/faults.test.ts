/**
 * The fault suite: real agents, a real Docker engine and wrangler dev, each hit by one fault.
 * Every test checks the record's promise: the jobs submitted are the jobs finished, each ran
 * to its end exactly once as far as the record shows, and nothing from a fenced (stale)
 * attempt reaches the job.
 */
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { COUNTERS } from "../../control-plane/src/coordinator/metrics.ts";
import { freePort, issueAgentToken, startAgent, startControlPlane, writeSecretsFile } from "../../scripts/local-grid.ts";
import { pollUntil } from "../helpers/poll.ts";
import { containerState, counter, crash, d1Rows, injectFault, planeApi, removeLeftoversOf, switchableEngine } from "./fault-tools.ts";
import { E2E_VARS } from "./global-setup.ts";
import { api, containersOf, cp, isDone, launchOnlineAgent, submit, waitForJob, waitForWorker, uniqueName } from "./helpers.ts";

const python = (script: string, pool: string) => ({ kind: "python", pool, python: { script } });

/**
 * Says which attempt it is at its start and its end, and leaves /work/output/from-attempt-N.txt
 * before the end. Attempt 1 takes `firstS` seconds, a later one a second: long enough for a
 * fault to strike the first while it runs, short for the retry.
 */
const byAttempt = (firstS: number) =>
  [
    "import os, time",
    "a = os.environ['GRIDX_ATTEMPT']",
    "print(f'attempt {a} started', flush=True)",
    `time.sleep(${firstS} if a == '1' else 1)`,
    "open(f'/work/output/from-attempt-{a}.txt', 'w').write(a)",
    "print(f'attempt {a} done', flush=True)",
  ].join("\n");
const ranAs = (attempt: number) => `attempt ${attempt} started\nattempt ${attempt} done\n`;

type LogLine = { attempt: number; stream: string; text: string };
const logLines = async (id: string) => (await api(`/v1/jobs/${id}/logs`)).json.lines as LogLine[];
/** What each attempt said, by attempt, as the record holds it. */
const attemptLines = async (jobId: string) => (await logLines(jobId)).filter((l) => l.text.startsWith("attempt ")).map((l) => [l.attempt, l.text]);
/** Attempt 1 started and was cut off (its later lines, if any, fenced); attempt 2 ran whole. */
const RAN_ONCE_MORE = [
  [1, "attempt 1 started"],
  [2, "attempt 2 started"],
  [2, "attempt 2 done"],
];
const attemptsOf = async (id: string) => (await api(`/v1/jobs/${id}/attempts`)).json.attempts as { attempt: number; status: string; exit_code: number | null }[];
const startedOn = (id: string, marker: string) => waitForJob(id, (j) => j.status === "running" && j.stdout.includes(marker));

describe("the fault suite", () => {
  // Invariant: one job submitted, one finished, by attempt 2 alone; the killed agent's copy is
  // stopped by its lease warden, and nothing it would have said after the kill is recorded.
  it("agent kill -9 mid-job: the job is requeued and completes on a second agent; the lease warden stops the orphan", async () => {
    const pool = uniqueName("kill9");
    const goneName = uniqueName("killed");
    // A lease shorter than WORKER_TIMEOUT_S, as the agent's usage asks.
    const gone = await launchOnlineAgent({ pool, name: goneName, extraArgs: ["--lease-s", "2"] });
    let other: Awaited<ReturnType<typeof launchOnlineAgent>> | undefined;
    try {
      // Attempt 1 would run a minute: only the warden can stop it that soon.
      const job = await submit(python(byAttempt(60), pool));
      await startedOn(job.id, "attempt 1 started");
      const [orphan] = await containersOf(job.id);
      other = await launchOnlineAgent({ pool, name: uniqueName("other") });
      await gone.stop("SIGKILL");

      await pollUntil(() => containerState(orphan!), (s) => !s.Running, { timeoutMs: 90_000, intervalMs: 250, what: "the killed agent's job container" });
      const done = await waitForJob(job.id, isDone, 90_000);
      expect(done).toMatchObject({ status: "completed", attempt: 2, exit_code: 0, worker_id: other.worker.id, stdout: ranAs(2) });
      expect(await attemptsOf(job.id)).toMatchObject([
        { attempt: 1, status: "lost" },
        { attempt: 2, status: "finished", exit_code: 0 },
      ]);
      expect(await attemptLines(job.id)).toEqual(RAN_ONCE_MORE);
    } finally {
      await other?.stop("SIGTERM");
      await removeLeftoversOf(gone, goneName);
    }
  });

  // Invariant: one job submitted, one finished, by attempt 2; the frozen agent's attempt 1 ran
  // to its end meanwhile, and its late logs, artifacts and result are fenced: the job shows
  // attempt 2's output and files only, and attempt 1's record stays lost.
  it("agent frozen (SIGSTOP) past WORKER_TIMEOUT_S, then thawed: the job ran once more elsewhere and the stale attempt's late report is fenced", async () => {
    const pool = uniqueName("frozen");
    const frozenName = uniqueName("frozen");
    // A lease far longer than the freeze: the warden leaves the stale container alone, so it
    // ends well and its late report is a whole, successful one, the hardest kind to fence.
    const frozen = await launchOnlineAgent({ pool, name: frozenName, extraArgs: ["--lease-s", "600"] });
    let other: Awaited<ReturnType<typeof launchOnlineAgent>> | undefined;
    let stopped = false;
    try {
      const job = await submit(python(byAttempt(8), pool));
      await startedOn(job.id, "attempt 1 started");
      const [stale] = await containersOf(job.id);
      frozen.process.kill("SIGSTOP");
      stopped = true;
      other = await launchOnlineAgent({ pool, name: uniqueName("other") });

      const done = await waitForJob(job.id, isDone, 90_000);
      expect(done).toMatchObject({ status: "completed", attempt: 2, worker_id: other.worker.id });
      // Everything attempt 1 has to say is late now: it ended while its agent was frozen.
      expect(await pollUntil(() => containerState(stale!), (s) => s.Status === "exited", { timeoutMs: 60_000, intervalMs: 250, what: "the stale attempt's container" })).toMatchObject({ ExitCode: 0 });
      const fenced = () => counter(COUNTERS.fenced, { pool, type: "job_result" });
      const fencedBefore = await fenced();
      frozen.process.kill("SIGCONT");
      stopped = false;
      await pollUntil(fenced, (n) => n > fencedBefore, { timeoutMs: 60_000, intervalMs: 250, what: "the stale attempt's late result, fenced" });
      await waitForWorker(pool, frozenName);

      expect((await api(`/v1/jobs/${job.id}`)).json).toMatchObject({ status: "completed", attempt: 2, exit_code: 0, failure_reason: null, stdout: ranAs(2) });
      expect(await attemptsOf(job.id)).toMatchObject([
        { attempt: 1, status: "lost", exit_code: null },
        { attempt: 2, status: "finished", exit_code: 0 },
      ]);
      expect(await attemptLines(job.id)).toEqual(RAN_ONCE_MORE);
      const listed = (await api(`/v1/jobs/${job.id}/artifacts`)).json.artifacts as { name: string; attempt: number }[];
      expect(listed.map((a) => a.name)).toContain("from-attempt-2.txt");
      expect(listed.every((a) => a.attempt === 2)).toBe(true);
      // The route lists the latest attempt's only; the record itself must hold none of attempt 1's.
      expect(await d1Rows<{ attempt: number; name: string }>(`SELECT attempt, name FROM artifacts WHERE job_id = '${job.id}' ORDER BY attempt, name`)).toEqual(
        listed.map((a) => ({ attempt: 2, name: a.name })).sort((x, y) => x.name.localeCompare(y.name)),
      );
    } finally {
      if (stopped) frozen.process.kill("SIGCONT");
      await Promise.all([frozen.stop("SIGTERM"), other?.stop("SIGTERM")]);
    }
  });

  // Invariant: the job submitted before the crash finishes once, on attempt 1, with its output
  // whole and not repeated: kill -9 loses nothing that D1 had, and the agent's buffered result
  // and log lines are taken once when it reconnects.
  it("control plane kill -9 mid-run, restarted on the same state: the running job's result arrives, nothing duplicated", { timeout: 240_000 }, async () => {
    const dir = mkdtempSync(join(cp().stateDir, "crash-"));
    const port = await freePort();
    const adminToken = "faults-crash-admin";
    const secretsFile = writeSecretsFile(join(dir, "secrets.env"), adminToken);
    // A worker timeout longer than the agent's reconnect backoff can grow to while the plane is down.
    const start = () => startControlPlane({ port, adminToken, secretsFile, persistTo: join(dir, "state"), vars: { ...E2E_VARS, WORKER_TIMEOUT_S: "30" } });
    let plane = await start();
    const call = planeApi(plane);
    const name = uniqueName("survivor");
    const agent = startAgent({ url: plane.url, token: await issueAgentToken(plane, name), name, stateDir: join(dir, "agent") });
    try {
      const job = await call("/v1/jobs", python("import time\nprint('before', flush=True)\ntime.sleep(6)\nprint('after')", "default"));
      await pollUntil(() => call(`/v1/jobs/${job.id}`), (j) => j.stdout?.includes("before"), { timeoutMs: 60_000, intervalMs: 100, what: "the job's first line" });

      await crash(plane.process);
      plane = await start();

      const done = await pollUntil(() => call(`/v1/jobs/${job.id}`), isDone, { timeoutMs: 120_000, intervalMs: 200, what: `job ${job.id}` });
      expect(done).toMatchObject({ status: "completed", attempt: 1, exit_code: 0, stdout: "before\nafter\n" });
      expect((await call(`/v1/jobs/${job.id}/attempts`)).attempts).toMatchObject([{ attempt: 1, status: "finished", exit_code: 0 }]);
    } finally {
      await agent.stop("SIGTERM");
      await plane.stop();
    }
  });

  // Invariant: each job submitted while its stage's D1 writes fail finishes once, completed on
  // attempt 1 (a failed write is retried, never turned into a requeue or a lost result).
  it("D1 failures injected during assignment, start and settlement: every job still ends completed, on attempt 1", async () => {
    const pool = uniqueName("d1faults");
    const name = uniqueName("steady");
    const agent = await launchOnlineAgent({ pool, name });
    // Each stage's SQL (db/attempts.ts), and the counter its failures show in.
    const stages = [
      { stage: "assignment", match: "UPDATE jobs SET status = 'assigned'", shows: () => counter(COUNTERS.handlerFailures, { pool, entry: "dispatch" }) },
      { stage: "start", match: "UPDATE attempts SET status = 'running'", shows: () => counter(COUNTERS.settlementRetries, { pool }) },
      { stage: "settlement", match: "UPDATE attempts SET status = v.status", shows: () => counter(COUNTERS.settlementRetries, { pool }) },
    ];
    try {
      const seen: Record<string, unknown> = {};
      for (const { stage, match, shows } of stages) {
        const [injectedBefore, shownBefore] = [await injectFault({ pool }), await shows()];
        await injectFault({ pool, d1: { fail_next: 3, match } });
        const job = await submit(python(`print('${stage} survived')`, pool));
        seen[stage] = {
          job: await waitForJob(job.id, isDone),
          attempts: (await attemptsOf(job.id)).length,
          // The faults struck where meant: all three used up on this stage's writes, and counted.
          injected: (await injectFault({ pool })) - injectedBefore,
          counted: (await shows()) > shownBefore,
        };
      }
      const survived = (stage: string) => ({ job: { status: "completed", attempt: 1, exit_code: 0, stdout: `${stage} survived\n` }, attempts: 1, injected: 3, counted: true });
      expect(seen).toMatchObject({ assignment: survived("assignment"), start: survived("start"), settlement: survived("settlement") });
    } finally {
      await agent.stop("SIGTERM");
    }
  });

  // Invariant: of the jobs submitted, running and queued when the coordinator's instance is
  // thrown away, every one finishes completed exactly once (attempt 1, output not repeated).
  it("Durable Object reset while agents are connected: running and queued jobs all complete, nothing duplicated", async () => {
    const pool = uniqueName("reset");
    const name = uniqueName("through");
    const agent = await launchOnlineAgent({ pool, name, slots: 2 });
    try {
      const jobs = [];
      // Long enough that the first two still run, the third waits on the agent (prefetched,
      // assigned) and the fourth in the queue, when the reset strikes.
      for (let i = 0; i < 4; i++) jobs.push(await submit(python(`import time\nprint('job ${i} started', flush=True)\ntime.sleep(6)\nprint('job ${i} done')`, pool)));
      await Promise.all(jobs.slice(0, 2).map((j, i) => startedOn(j.id, `job ${i} started`)));
      expect(await Promise.all(jobs.map(async (j) => (await api(`/v1/jobs/${j.id}`)).json.status))).toEqual(["running", "running", "assigned", "queued"]);

      await injectFault({ pool, reset: true });

      const done = await Promise.all(jobs.map((j) => waitForJob(j.id, isDone, 90_000)));
      expect(done).toMatchObject(jobs.map((_, i) => ({ status: "completed", attempt: 1, exit_code: 0, stdout: `job ${i} started\njob ${i} done\n` })));
      expect(await Promise.all(jobs.map(async (j) => (await attemptsOf(j.id)).length))).toEqual([1, 1, 1, 1]);
      await waitForWorker(pool, name);
    } finally {
      await agent.stop("SIGTERM");
    }
  });

  // Invariant: each job submitted while the engine hangs finishes once, failed internal with a
  // reason naming the Docker call; the agent is never stuck and never dies, and runs the next
  // job once the engine answers again.
  it("Docker engine unresponsive: jobs fail internal naming the Docker call, the agent stays up and online", async () => {
    const pool = uniqueName("hung");
    const name = uniqueName("patient");
    const engine = await switchableEngine();
    // No prestarted sandbox: a job's first engine call is then the one that hangs, with nothing half made.
    const agent = await launchOnlineAgent({ pool, name, env: { DOCKER_HOST: `unix://${engine.socketPath}` }, extraArgs: ["--docker-timeout", "2", "--prestart", "0"] });
    try {
      engine.hang();
      const seen = [];
      for (const n of [1, 2]) {
        const done = await waitForJob((await submit(python(`print('job ${n}')`, pool))).id, isDone);
        seen.push({ job: done, agentExited: agent.process.exitCode, worker: (await waitForWorker(pool, name)).status });
      }
      const failedNamingTheCall = { job: { status: "failed", failure_reason: "internal", failure_message: expect.stringMatching(/did not answer (GET|POST|PUT|DELETE) \/\S+/) }, agentExited: null, worker: "online" };
      expect(seen).toMatchObject([failedNamingTheCall, failedNamingTheCall]);
      engine.recover();
      expect(await waitForJob((await submit(python("print('job 3')", pool))).id, isDone)).toMatchObject({ status: "completed", stdout: "job 3\n" });
    } finally {
      // The engine answers again first, so the agent can remove its warden as it stops.
      engine.recover();
      await agent.stop("SIGTERM");
      await removeLeftoversOf(agent, name);
      await engine.close();
    }
  });
});
