import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { issueAgentToken, startAgent } from "../scripts/local-grid.ts";
import { call, sleep } from "./grid.ts";
import type { BenchPlane } from "./grid.ts";
import { median, p99, round, type Figure } from "./stats.ts";

const SCRIPT = "print(1)";

async function viaGrid(cp: BenchPlane, pool: string) {
  const t0 = performance.now();
  const job = await call(cp, "POST", "/v1/jobs", { kind: "python", pool, python: { script: SCRIPT } });
  for (;;) {
    const j = await call(cp, "GET", `/v1/jobs/${job.id}`);
    if (j.status === "completed") {
      return { total: performance.now() - t0, toStart: Date.parse(j.started_at) - Date.parse(j.created_at) };
    }
    if (j.status === "failed" || j.status === "canceled") throw new Error(`bench job ${j.id} ${j.status}`);
    await sleep(5);
  }
}

/** The input folder of the trivial job as the agent lays it out (`dir`, created), for viaDocker. */
export function sandboxInput(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "main.py"), SCRIPT);
  writeFileSync(join(dir, "task.json"), JSON.stringify({ script: "main.py", args: [] }));
  chmodSync(dir, 0o755);
  return dir;
}

/** The same container the agent runs, started by hand: the floor gridx is measured against. */
export function viaDocker(dir: string): Promise<number> {
  const t0 = performance.now();
  const args = ["run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--pids-limit", "256", "--memory", "512m", "--cpus", "1", "--user", "1000:1000", "--tmpfs", "/tmp:rw,noexec,nosuid,size=64m", "--init", "-v", `${dir}:/work/input:ro`, "gridx/python:latest"];
  return new Promise((resolve, reject) => {
    const p = spawn("docker", args, { stdio: ["ignore", "pipe", "pipe"] });
    p.on("close", (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`docker run exited ${code}`))));
  });
}

/** 1. Submit-to-result of a trivial job on the local grid against a bare `docker run`, interleaved. */
export async function benchOverhead(cp: BenchPlane, runs: number): Promise<Figure[]> {
  const pool = "bench-overhead";
  const dir = mkdtempSync(join(cp.dir, "overhead-"));
  const input = sandboxInput(join(dir, "input"));
  const agent = startAgent({ url: cp.url, token: await issueAgentToken(cp, "bench", pool), name: "bench-overhead", stateDir: join(dir, "agent") });
  try {
    for (let i = 0; i < 2; i++) await viaGrid(cp, pool); // warm-up: image cache, connections
    await viaDocker(input);
    const grid: number[] = [];
    const toStart: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < runs; i++) {
      // Interleaved, alternating which goes first, so drift hits both alike.
      const order = i % 2 === 0 ? ["grid", "docker"] : ["docker", "grid"];
      for (const which of order) {
        if (which === "grid") {
          const r = await viaGrid(cp, pool);
          grid.push(r.total);
          toStart.push(r.toStart);
        } else bare.push(await viaDocker(input));
      }
    }
    return [
      { section: "1 overhead", name: "gridx submit→result p50", value: round(median(grid)), unit: "ms" },
      { section: "1 overhead", name: "gridx submit→result p99", value: round(p99(grid)), unit: "ms" },
      { section: "1 overhead", name: "docker run --rm p50", value: round(median(bare)), unit: "ms" },
      { section: "1 overhead", name: "docker run --rm p99", value: round(p99(bare)), unit: "ms" },
      { section: "1 overhead", name: "overhead p50 (gridx − docker)", value: round(median(grid) - median(bare)), unit: "ms", target: "<= 150" },
      { section: "1 overhead", name: "submit→container start p50", value: round(median(toStart)), unit: "ms", target: "<= 100" },
      { section: "1 overhead", name: "submit→container start p99", value: round(p99(toStart)), unit: "ms" },
    ];
  } finally {
    await agent.stop("SIGTERM");
  }
}
