import { AttemptSandbox } from "../../protocol/index.ts";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { release } from "node:os";
import { prestartableRuntimes } from "../../agent/src/caps.ts";
import { DockerEngine } from "../../agent/src/docker/engine.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { DockerRunner } from "../../agent/src/runner/docker-runner.ts";
import { recorder } from "../support/run-hooks.ts";
import { LABELS } from "../../agent/src/runner/sandbox.ts";
import { JobRequest } from "../../protocol/index.ts";
import { pollUntil } from "../helpers/poll.ts";

const docker = new DockerEngine();

let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** A runner under a unique agent name; its containers go when the test ends, as a restarted agent's would. */
function runner(prestart: number) {
  const name = `prestart-${Math.random().toString(36).slice(2, 8)}`;
  const stateDir = mkdtempSync(join(tmpdir(), "gridx-prestart-"));
  const instance = randomBytes(16).toString("hex");
  const r = new DockerRunner(docker, { stateDir, agentName: name, instance, images: { python: "gridx/python:latest" }, stopGraceS: 1, tmpfsMb: 16, outputCapBytes: 1 << 20, allowedImages: [], prestart }, silentLogger);
  cleanup.push(() => r.close(), () => r.cleanupLeftovers());
  return { r, name, jobsDir: r.jobsDir() };
}

/** A runner whose one sandbox is waiting, and that sandbox's container id. */
async function readyRunner() {
  const made = runner(1);
  await made.r.start();
  await pollUntil(async () => made.r.prestarted!.ready, (n) => n === 1, { timeoutMs: 20_000, intervalMs: 20, what: "a prestarted sandbox" });
  return { ...made, sandbox: (await sandboxesOf(made.name))[0]! };
}

/** Containers (running or not) prestarted for this agent. */
async function sandboxesOf(agent: string): Promise<string[]> {
  return (await docker.listContainers([`${LABELS.agent}=${agent}`, `${LABELS.prestarted}=true`])).map((c) => c.Id);
}

const python = (script: string, extra: Record<string, unknown> = {}) => JobRequest.parse({ kind: "python", python: { script }, ...extra });

/** Prints what a job sees of its container: its name (the container id's start), env, args and /work/output. */
const SELF_REPORT = [
  "import os, socket, sys",
  "print(socket.gethostname(), os.environ['GREETING'], os.environ['GRIDX_JOB_ID'], os.environ['GRIDX_ATTEMPT'], 'GRIDX_PRESTARTED' in os.environ, os.listdir('/work/output'), sys.argv[1:])",
  "print('to stderr', file=sys.stderr)",
  "sys.exit(3)",
].join("\n");

describe("prestarted sandboxes on the real engine", () => {
  it("run a python job as its own container would: output, env, args, exit code", async () => {
    const { r, sandbox } = await readyRunner();
    const { seen, hooks } = recorder();
    const spec = JobRequest.parse({ kind: "python", python: { script: SELF_REPORT, args: ["a b"] }, env: { GREETING: "hi" } });
    const out = await r.run({ jobId: "j_pre", attempt: 2, spec, gpuIndices: [], inputs: [], sandbox: AttemptSandbox.parse({}) }, hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: 3, failure_reason: "exit_code" });
    expect(seen).toMatchObject({ stdout: `${sandbox.slice(0, 12)} hi j_pre 2 False [] ['a b']\n`, stderr: "to stderr\n" });
    expect(seen.started).toHaveLength(1);

    const cold = runner(0);
    const coldSeen = recorder();
    const coldOut = await cold.r.run({ jobId: "j_pre", attempt: 2, spec, gpuIndices: [], inputs: [], sandbox: AttemptSandbox.parse({}) }, coldSeen.hooks, new AbortController().signal);
    expect(coldOut).toEqual(out);
    expect(coldSeen.seen.stdout.split(" ").slice(1)).toEqual(seen.stdout.split(" ").slice(1));
  });

  it("hold a job to its own memory limit, changed live", async () => {
    const { r, sandbox } = await readyRunner();
    const { seen, hooks } = recorder();
    const spec = python("import socket\nprint(socket.gethostname(), flush=True)\nx = bytearray(400 * 1024 * 1024)\nprint(len(x))", { limits: { memory_mb: 64 } });
    const out = await r.run({ jobId: "j_oom", attempt: 1, spec, gpuIndices: [], inputs: [], sandbox: AttemptSandbox.parse({}) }, hooks, new AbortController().signal);
    expect(out).toMatchObject({ failure_reason: "oom", message: expect.stringContaining("64 MiB") });
    expect(seen.stdout).toBe(`${sandbox.slice(0, 12)}\n`);
  });

  it("are replaced after use, and a used one is removed with its job", async () => {
    const { r, name, sandbox } = await readyRunner();
    const out = await r.run({ jobId: "j_once", attempt: 1, spec: python("print(1)"), gpuIndices: [], inputs: [], sandbox: AttemptSandbox.parse({}) }, recorder().hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: 0, failure_reason: null });
    await pollUntil(async () => r.prestarted!.ready, (n) => n === 1, { timeoutMs: 20_000, intervalMs: 20, what: "a replacement sandbox" });
    const now = await sandboxesOf(name);
    expect(now).toHaveLength(1);
    expect(now).not.toContain(sandbox);
  });

  it("start a job cold when its waiting sandbox has died", async () => {
    const { r, name, sandbox } = await readyRunner();
    await docker.stopContainer(sandbox, 0);
    const { seen, hooks } = recorder();
    const spec = python(SELF_REPORT, { env: { GREETING: "hello" } });
    const out = await r.run({ jobId: "j_dead", attempt: 1, spec, gpuIndices: [], inputs: [], sandbox: AttemptSandbox.parse({}) }, hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: 3, failure_reason: "exit_code" });
    const [host, ...rest] = seen.stdout.split(" ");
    expect(rest.join(" ")).toBe("hello j_dead 1 False [] []\n");
    expect(sandbox.startsWith(host!)).toBe(false);
    expect(await sandboxesOf(name)).not.toContain(sandbox);
  });

  it("are removed, folders and all, when the runner closes", async () => {
    const { r, name, jobsDir } = await readyRunner();
    expect(readdirSync(jobsDir).filter((d) => d.startsWith("prestarted-"))).toHaveLength(1);
    await r.close();
    expect(await sandboxesOf(name)).toEqual([]);
    expect(readdirSync(jobsDir)).toEqual([]);
    expect(r.prestarted!.take("runc")).toBeNull();
  });
});

/** Runtimes other than runc this engine can prestart sandboxes for (gVisor, where runsc has --host-fifo=open). */
const otherRuntimes = prestartableRuntimes((await docker.info()).Runtimes).filter((r) => r !== "runc");
/** Prints the container's name and its kernel's release: the host's under runc, gVisor's own under gVisor. */
const WHERE = "import socket\nprint(socket.gethostname(), open('/proc/version').read().split()[2])";

describe.each(otherRuntimes)("prestarted sandboxes with %s beside runc", (other) => {
  it("are made for the runtime the last python job asked for, and a job takes only one of its own", async () => {
    const { r, name, sandbox: first } = await readyRunner();
    const job = async (runtime: "runc" | typeof other) => {
      const { seen, hooks } = recorder();
      const out = await r.run({ jobId: `j_${runtime}`, attempt: 1, spec: python(WHERE), gpuIndices: [], inputs: [], sandbox: AttemptSandbox.parse({ runtime }) }, hooks, new AbortController().signal);
      expect(out).toMatchObject({ exit_code: 0, failure_reason: null });
      const [host, kernel] = seen.stdout.trim().split(" ");
      return { host: host!, kernel: kernel! };
    };
    const waiting = async (what: string) => {
      await pollUntil(async () => r.prestarted!.ready, (n) => n === 1, { timeoutMs: 20_000, intervalMs: 20, what });
      return (await sandboxesOf(name))[0]!;
    };

    // The runc sandbox does not serve it: it starts cold, and the pool turns to its runtime.
    const cold = await job(other);
    expect(first.startsWith(cold.host)).toBe(false);
    expect(cold.kernel).not.toBe(release());
    const second = await waiting(`a ${other} sandbox`);
    expect(await sandboxesOf(name)).toEqual([second]);
    expect(second).not.toBe(first);

    const warm = await job(other);
    expect(second.startsWith(warm.host)).toBe(true);
    expect(warm.kernel).toBe(cold.kernel);

    // And back: a runc job does not get a sandbox of another runtime.
    const third = await waiting(`a replacement ${other} sandbox`);
    const runc = await job("runc");
    expect(third.startsWith(runc.host)).toBe(false);
    expect(runc.kernel).toBe(release());
    const fourth = await waiting("a runc sandbox again");
    expect((await job("runc")).host).toBe(fourth.slice(0, 12));
  });
});
