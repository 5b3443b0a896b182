import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cliBin } from "../scripts/build-cli.ts";
import { issueAgentToken, startAgent } from "../scripts/local-grid.ts";
import type { BenchPlane } from "./grid.ts";
import { sandboxInput, viaDocker } from "./overhead.ts";
import { median, round, type Figure } from "./stats.ts";

/** Wall time of one process, start to exit; a non-zero exit is an error. */
function wall(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"], env });
    let err = "";
    p.stderr.on("data", (c: Buffer) => (err += c.toString()));
    p.on("close", (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${err.slice(-500)}`))));
  });
}

/** Runs each of `which` once per round, in turn, rotating who goes first, so drift hits them alike. */
async function interleaved(rounds: number, which: Record<string, () => Promise<number>>): Promise<Record<string, number[]>> {
  const names = Object.keys(which);
  const out: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let i = 0; i < rounds; i++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(i + k) % names.length]!;
      out[name]!.push(await which[name]!());
    }
  }
  return out;
}

/**
 * The CLI as a user feels it: `gridx --help` against `node -e 0` (the start of a bundled CLI
 * against Node's own), and `gridx run job.py` (a script printing one line, followed through
 * the log stream to its exit) against a bare `docker run` of the same sandbox.
 */
export async function benchCli(cp: BenchPlane, runs: number): Promise<Figure[]> {
  const bin = cliBin();
  const node = process.execPath;
  const starts = await interleaved(Math.max(runs, 10), {
    node: () => wall(node, ["-e", "0"]),
    help: () => wall(node, [bin, "--help"]),
  });

  const pool = "bench-cli";
  const dir = mkdtempSync(join(cp.dir, "cli-"));
  const input = sandboxInput(join(dir, "input"));
  const job = join(dir, "job.py");
  writeFileSync(job, "print(1)\n");
  mkdirSync(join(dir, "config"));
  const env = { ...process.env, GRIDX_URL: cp.url, GRIDX_TOKEN: cp.adminToken, XDG_CONFIG_HOME: join(dir, "config") };
  const agent = startAgent({ url: cp.url, token: await issueAgentToken(cp, "bench-cli", pool), name: "bench-cli", stateDir: join(dir, "agent") });
  try {
    const run = () => wall(node, [bin, "run", "--quiet", "--pool", pool, job], env);
    for (let i = 0; i < 2; i++) await run(); // warm-up: the agent's connection, the image cache
    await viaDocker(input);
    const jobs = await interleaved(runs, { run, docker: () => viaDocker(input) });
    const ratio = (a: number[], b: number[]) => round(median(a) / median(b), 2);
    return [
      { section: "cli", name: "node -e 0 p50", value: round(median(starts.node!)), unit: "ms" },
      { section: "cli", name: "gridx --help p50", value: round(median(starts.help!)), unit: "ms" },
      { section: "cli", name: "gridx --help ÷ node -e 0 (p50s)", value: ratio(starts.help!, starts.node!), unit: "×", target: "<= 2" },
      { section: "cli", name: "gridx run job.py wall p50", value: round(median(jobs.run!)), unit: "ms" },
      { section: "cli", name: "docker run (same sandbox) p50", value: round(median(jobs.docker!)), unit: "ms" },
      { section: "cli", name: "gridx run ÷ docker run (p50s)", value: ratio(jobs.run!, jobs.docker!), unit: "×", target: "<= 1.2" },
    ];
  } finally {
    await agent.stop("SIGTERM");
  }
}
