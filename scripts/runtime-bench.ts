/**
 * Bench section 9's driver (bench/runtimes.ts runs it in a process of its own, so that these
 * agent modules type-check with Node's types rather than the Workers' the bench program carries):
 * `node --import tsx scripts/runtime-bench.ts RUNS` prints the figures as one JSON line.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { prestartableRuntimes, runtimesOf } from "../agent/src/caps.ts";
import { DockerEngine } from "../agent/src/docker/engine.ts";
import { silentLogger } from "../agent/src/logger.ts";
import { DockerRunner } from "../agent/src/runner/docker-runner.ts";
import type { RunHooks } from "../agent/src/runner/runner.ts";
import { AttemptSandbox, JobRequest, type Runtime } from "../protocol/index.ts";
import { median, round, type Figure } from "../bench/stats.ts";

/**
 * The micro-jobs, each timing itself inside the container (so start-up is not in it) and
 * printing milliseconds. CPU: pure Python arithmetic, no system calls. Syscalls: 100k each of
 * getpid, stat and open+close (in /tmp, the job's tmpfs, and in /work/output, a host folder).
 */
const MICRO = {
  cpu: "import time\nt = time.perf_counter()\ns = 0\nfor i in range(3_000_000):\n    s += i * i\nprint((time.perf_counter() - t) * 1000)",
  getpid: "import os, time\nt = time.perf_counter()\nfor _ in range(100_000):\n    os.getpid()\nprint((time.perf_counter() - t) * 1000)",
  stat: "import os, time\nt = time.perf_counter()\nfor _ in range(100_000):\n    os.stat('/work/output')\nprint((time.perf_counter() - t) * 1000)",
  "open+close /tmp": "import os, time\nopen('/tmp/f', 'w').close()\nt = time.perf_counter()\nfor _ in range(100_000):\n    os.close(os.open('/tmp/f', os.O_RDONLY))\nprint((time.perf_counter() - t) * 1000)",
  "open+close /work/output": "import os, time\nopen('/work/output/f', 'w').close()\nt = time.perf_counter()\nfor _ in range(100_000):\n    os.close(os.open('/work/output/f', os.O_RDONLY))\nprint((time.perf_counter() - t) * 1000)",
} as const;

const noHooks = (sink: { stdout: string }): RunHooks => ({ started() {}, output: (s, c) => void (s === "stdout" && (sink.stdout += c.toString())), system() {}, congested: () => false });

/**
 * 9. The same jobs under each runtime this machine's dockerd has (runc, and gVisor as runsc),
 * through the agent's own DockerRunner, interleaved round by round so drift hits all alike:
 * a trivial job's run→result cold and in a prestarted sandbox, and the micro-jobs' own times.
 * `runs` rounds, p50.
 */
export async function benchRuntimes(runs: number): Promise<Figure[]> {
  const docker = new DockerEngine();
  const registered = (await docker.info()).Runtimes;
  const runtimes = runtimesOf(registered);
  const prestartable = prestartableRuntimes(registered);
  const made: DockerRunner[] = [];
  const runner = async (prestart: number) => {
    const r = new DockerRunner(
      docker,
      { stateDir: mkdtempSync(join(tmpdir(), "gridx-bench-rt-")), agentName: "bench-runtimes", instance: randomBytes(16).toString("hex"), images: { python: "gridx/python:latest" }, stopGraceS: 1, tmpfsMb: 64, outputCapBytes: 1 << 20, allowedImages: [], prestart },
      silentLogger,
    );
    made.push(r);
    await r.cleanupLeftovers();
    await r.start();
    return r;
  };
  let n = 0;
  const job = async (r: DockerRunner, runtime: Runtime, script: string) => {
    const sink = { stdout: "" };
    const t0 = performance.now();
    const out = await r.run({ jobId: `j_bench_${n++}`, attempt: 1, spec: JobRequest.parse({ kind: "python", python: { script } }), gpuIndices: [], inputs: [], sandbox: AttemptSandbox.parse({ runtime }) }, noHooks(sink), new AbortController().signal);
    if (out.exit_code !== 0) throw new Error(`a bench job under ${runtime} failed: ${out.message}`);
    return { wallMs: performance.now() - t0, printed: Number(sink.stdout.trim()) };
  };
  try {
    const cold = await runner(0);
    // One pool per runtime, so each keeps sandboxes of its own waiting.
    const warm = new Map(await Promise.all(prestartable.map(async (rt) => [rt, await runner(1)] as const)));
    const samples = new Map<string, number[]>();
    const add = (key: string, v: number) => samples.set(key, [...(samples.get(key) ?? []), v]);
    // A warm-up round: images in the page cache, and each pool turned to its runtime.
    for (const rt of runtimes) {
      await job(cold, rt, "print(1)");
      const pool = warm.get(rt);
      if (pool) await job(pool, rt, "print(1)");
    }
    for (let i = 0; i < runs; i++) {
      for (const rt of i % 2 === 0 ? runtimes : [...runtimes].reverse()) {
        add(`${rt}|trivial job, cold: run→result`, (await job(cold, rt, "print(1)")).wallMs);
        const pool = warm.get(rt);
        if (pool) {
          // Its sandbox is made again after each job; the figure is for a job that finds one waiting.
          const deadline = Date.now() + 30_000;
          while (pool.prestarted!.ready < 1) {
            if (Date.now() > deadline) throw new Error(`no ${rt} sandbox was prestarted within 30 s`);
            await new Promise((r) => setTimeout(r, 10));
          }
          add(`${rt}|trivial job, prestarted: run→result`, (await job(pool, rt, "print(1)")).wallMs);
        }
        for (const [name, script] of Object.entries(MICRO)) add(`${rt}|${name === "cpu" ? "CPU: 3M Python multiply-adds" : `syscalls: 100k ${name}`}`, (await job(cold, rt, script)).printed);
      }
    }
    const figures: Figure[] = [];
    for (const [key, values] of samples) {
      const [rt, name] = key.split("|") as [Runtime, string];
      figures.push({ section: "9 runtimes", name: `${name} (${rt}) p50`, value: round(median(values)), unit: "ms" });
    }
    // Runtimes side by side, figure by figure.
    return figures.sort((a, b) => a.name.replace(/ \(\w+\) p50$/, "").localeCompare(b.name.replace(/ \(\w+\) p50$/, "")));
  } finally {
    for (const r of made) {
      await r.close();
      await r.cleanupLeftovers();
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.stdout.write(`${JSON.stringify(await benchRuntimes(Number(process.argv[2] ?? 7)))}\n`);
}
