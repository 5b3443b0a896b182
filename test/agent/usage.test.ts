import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runtimesOf } from "../../agent/src/caps.ts";
import { DockerEngine } from "../../agent/src/docker/engine.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { DockerRunner, gridxEnv } from "../../agent/src/runner/docker-runner.ts";
import { LABELS } from "../../agent/src/runner/sandbox.ts";
import { attemptUsage, openUsageCgroups, usageCgroupBase, UsageCgroups } from "../../agent/src/runner/usage.ts";
import { AttemptSandbox, JobRequest, type JobSpec, type Runtime } from "../../protocol/index.ts";
import { pollUntil } from "../helpers/poll.ts";
import { recorder } from "../support/run-hooks.ts";

const docker = new DockerEngine();
const info = await docker.info();
const CGROUP_ROOT = "/sys/fs/cgroup";
const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** This machine's usage cgroups for a fresh installation, removed (base and all) when the test ends. */
async function realCgroups(instance: string): Promise<UsageCgroups> {
  const opened = await openUsageCgroups({ info, local: true, root: CGROUP_ROOT }, instance);
  if (!opened.ok) throw new Error(`these tests need the engine's cgroups: ${opened.why}`);
  cleanup.push(async () => {
    await opened.cgroups.removeAll();
    // The agent keeps its base across restarts; a test's instance is never seen again.
    for (const c of readdirSync(CGROUP_ROOT)) {
      const base = join(CGROUP_ROOT, c, usageCgroupBase(instance));
      if (existsSync(base)) rmdirSync(base);
    }
  });
  return opened.cgroups;
}

function runner(instance: string, cgroups: UsageCgroups | null, prestart = 0) {
  const r = new DockerRunner(
    docker,
    { stateDir: tempDir("gridx-usage-"), agentName: `usage-${instance.slice(0, 6)}`, instance, images: { python: "gridx/python:latest" }, stopGraceS: 1, tmpfsMb: 16, outputCapBytes: 1 << 20, allowedImages: [], prestart, cgroups },
    silentLogger,
  );
  cleanup.push(
    () => r.cleanupLeftovers(),
    () => r.close(),
  );
  return r;
}

const request = (jobId: string, script: string, runtime: Runtime = "runc", extra: Partial<JobSpec> = {}) => ({
  jobId,
  attempt: 1,
  spec: { ...JobRequest.parse({ kind: "python", python: { script } }), ...extra },
  gpuIndices: [],
  inputs: [],
  sandbox: AttemptSandbox.parse({ runtime }),
});

/** About one CPU-second of the job's own, and 200 MiB touched page by page. */
const BURN = [
  "import time",
  "start = time.process_time()",
  "b = bytearray(200 * 1024 * 1024)",
  "for i in range(0, len(b), 4096): b[i] = 1",
  "while time.process_time() - start < 1.0: pass",
].join("\n");

/** Well under a second, shorter than one sample of Docker's stats stream: 100 MiB, then out. */
const BRIEF = "b = bytearray(100 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1";

const newInstance = () => randomBytes(16).toString("hex");

describe("attemptUsage", () => {
  it("counts GPU seconds as the GPUs held times the wall time, rounded as reported", () => {
    expect(attemptUsage({ cpuS: 1.09124, peakMemoryMb: 204.06 }, 2, 1500.4)).toEqual({ cpu_s: 1.091, peak_memory_mb: 204.1, gpu_s: 3.001, wall_s: 1.5 });
    expect(attemptUsage({ cpuS: 0.2, peakMemoryMb: 10 }, 0, 900)).toMatchObject({ gpu_s: 0, wall_s: 0.9 });
  });
});

describe("UsageCgroups", () => {
  it("reads a v1 parent's CPU time and memory high-water mark", async () => {
    const root = tempDir("gridx-cg1-");
    const cg = new UsageCgroups(root, "1", "/gridx-jobs-x");
    mkdirSync(join(root, "cpuacct", cg.parent("c1")), { recursive: true });
    mkdirSync(join(root, "memory", cg.parent("c1")), { recursive: true });
    writeFileSync(join(root, "cpuacct", cg.parent("c1"), "cpuacct.usage"), "1094387251\n");
    writeFileSync(join(root, "memory", cg.parent("c1"), "memory.max_usage_in_bytes"), "213917696\n");
    expect(await cg.read("c1")).toEqual({ cpuS: 1.094387251, peakMemoryMb: 204.0078125 });
    expect(await cg.read("c2")).toBeNull();
  });

  it("reads a v2 parent's cpu.stat and memory.peak, and none without memory.peak", async () => {
    const root = tempDir("gridx-cg2-");
    const cg = new UsageCgroups(root, "2", "/gridx-jobs-x");
    const dir = join(root, cg.parent("c1"));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "cpu.stat"), "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n");
    expect(await cg.read("c1")).toBeNull();
    writeFileSync(join(dir, "memory.peak"), String(300 * 1024 * 1024));
    expect(await cg.read("c1")).toEqual({ cpuS: 2.5, peakMemoryMb: 300 });
  });

  it("are refused, saying why, for a remote engine or the systemd driver", async () => {
    const v1 = { CgroupVersion: "1", CgroupDriver: "cgroupfs" };
    expect(await openUsageCgroups({ info: v1, local: false, root: CGROUP_ROOT }, "x")).toMatchObject({ ok: false, why: expect.stringContaining("another machine") });
    expect(await openUsageCgroups({ info: { ...v1, CgroupDriver: "systemd" }, local: true, root: CGROUP_ROOT }, "x")).toMatchObject({ ok: false, why: expect.stringContaining("systemd") });
  });
});

describe("gridxEnv", () => {
  it("tells an array task its index and the array's size, and any job its id and attempt", () => {
    expect(gridxEnv({ jobId: "j_1", attempt: 2, spec: { array: { count: 4, index: 3 } } })).toEqual({ GRIDX_JOB_ID: "j_1", GRIDX_ATTEMPT: "2", GRIDX_ARRAY_INDEX: "3", GRIDX_ARRAY_COUNT: "4" });
    expect(gridxEnv({ jobId: "j_1", attempt: 1, spec: { array: null } })).toEqual({ GRIDX_JOB_ID: "j_1", GRIDX_ATTEMPT: "1" });
  });

  it("tells a job pinned to a worker (a broadcast's) that worker's id", () => {
    expect(gridxEnv({ jobId: "j_1", attempt: 1, spec: { array: null, worker: "w_1" } })).toEqual({ GRIDX_JOB_ID: "j_1", GRIDX_ATTEMPT: "1", GRIDX_WORKER_ID: "w_1" });
    expect(gridxEnv({ jobId: "j_1", attempt: 1, spec: { array: null, worker: null } })).not.toHaveProperty("GRIDX_WORKER_ID");
  });
});

describe.each(runtimesOf(info.Runtimes))("usage of a real container under %s", (runtime) => {
  it("reports about a CPU-second and at least the 200 MiB a job allocated, and removes its cgroup", async () => {
    const instance = newInstance();
    const cgroups = await realCgroups(instance);
    const out = await runner(instance, cgroups).run(request("j_burn", BURN, runtime), recorder().hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: 0, failure_reason: null });
    const usage = out.usage!;
    expect(usage.cpu_s).toBeGreaterThanOrEqual(0.95);
    expect(usage.cpu_s).toBeLessThan(3);
    expect(usage.peak_memory_mb).toBeGreaterThanOrEqual(200);
    expect(usage.peak_memory_mb).toBeLessThan(512);
    expect(usage.wall_s).toBeGreaterThanOrEqual(0.9);
    expect(usage.gpu_s).toBe(0);
    const left = readdirSync(join(CGROUP_ROOT, "memory", usageCgroupBase(instance)), { withFileTypes: true }).filter((e) => e.isDirectory());
    expect(left.map((e) => e.name)).toEqual([]);
  });

  it("counts a job that ends well under a second", async () => {
    const instance = newInstance();
    const out = await runner(instance, await realCgroups(instance)).run(request("j_brief", BRIEF, runtime), recorder().hooks, new AbortController().signal);
    expect(out.exit_code).toBe(0);
    expect(out.usage!.cpu_s).toBeGreaterThan(0);
    expect(out.usage!.peak_memory_mb).toBeGreaterThanOrEqual(100);
  });
});

describe("a job's usage and environment on the real engine", () => {
  it("still reports the result, without usage, when the cgroup cannot be read", async () => {
    const instance = newInstance();
    // The engine makes the parents in the real hierarchy; the agent looks in an empty folder, as one with another view of /sys/fs/cgroup would.
    await realCgroups(instance);
    const blind = new UsageCgroups(tempDir("gridx-nocg-"), "1", usageCgroupBase(instance));
    const out = await runner(instance, blind).run(request("j_blind", "print('ran')"), recorder().hooks, new AbortController().signal);
    expect(out).toEqual({ exit_code: 0, failure_reason: null, message: null, resolved: undefined });
  });

  const ARRAY_ENV = "import os, socket\nprint(socket.gethostname(), os.environ['GRIDX_ARRAY_INDEX'], os.environ['GRIDX_ARRAY_COUNT'], os.environ['GRIDX_ATTEMPT'])";

  it("shows an array task its index and count, in a container of its own", async () => {
    const { seen, hooks } = recorder();
    const out = await runner(newInstance(), null).run({ ...request("j_task", ARRAY_ENV, "runc", { array: { count: 4, index: 2 } }), attempt: 3 }, hooks, new AbortController().signal);
    expect(out.exit_code).toBe(0);
    expect(seen.stdout).toMatch(/^\S+ 2 4 3\n$/);
  });

  it("shows an array task its index and count in a prestarted sandbox, which reports its usage too", async () => {
    const instance = newInstance();
    const r = runner(instance, await realCgroups(instance), 1);
    await r.start();
    await pollUntil(async () => r.prestarted!.ready, (n) => n === 1, { timeoutMs: 20_000, intervalMs: 20, what: "a prestarted sandbox" });
    const [sandbox] = (await docker.listContainers([`${LABELS.instance}=${instance}`, `${LABELS.prestarted}=true`])).map((c) => c.Id);
    const { seen, hooks } = recorder();
    const out = await r.run(request("j_task", `${ARRAY_ENV}\n${BRIEF}`, "runc", { array: { count: 10, index: 7 } }), hooks, new AbortController().signal);
    expect(out.exit_code).toBe(0);
    expect(seen.stdout).toBe(`${sandbox!.slice(0, 12)} 7 10 1\n`);
    expect(out.usage!.peak_memory_mb).toBeGreaterThanOrEqual(100);
  });
});
