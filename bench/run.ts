/**
 * `npm run bench`: what users feel, measured on this machine. Prints a table, writes the same
 * figures as JSON and an SVG chart under bench/results/. Never fails on a timing.
 * Sizes: BENCH_RUNS (overhead and cli runs, 15), BENCH_JOBS (5000), BENCH_AGENTS (2000), BENCH_MIB (256),
 * BENCH_STORM_AGENTS (5000) and BENCH_STORM_JOBS (1000, running through the storm),
 * BENCH_STORM_DOWN_S (0: how long the storm keeps the killed control plane down), BENCH_FAIRSHARE_JOBS
 * (1000 per project), BENCH_AUTH_ROUNDS (500 authorized reads per kind of token, limits on and off),
 * BENCH_RUNTIME_RUNS (7 rounds of each job under each runtime), BENCH_BURST_JOBS (60 trivial jobs on one 2-slot agent),
 * BENCH_LOG_LINES (100000 lines printed by one job as fast as it can), BENCH_REALTIME_LINES (5000 lines
 * printed by the job that 0 and then BENCH_REALTIME_FOLLOWERS (50) followers read), BENCH_SESSION_REQUESTS (500 GETs
 * through a job's port) and BENCH_JUPYTER_RUNS (3 `gridx jupyter` starts).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureRunnerImages, ROOT } from "../scripts/local-grid.ts";
import { benchAuth } from "./auth.ts";
import { benchBurst } from "./burst.ts";
import { benchCli } from "./cli.ts";
import { benchDispatch } from "./dispatch.ts";
import { benchFairShare } from "./fairshare.ts";
import { benchFleet } from "./fleet.ts";
import { benchFootprint } from "./footprint.ts";
import { benchLogFlood } from "./logflood.ts";
import { benchControlPlane } from "./grid.ts";
import { benchOverhead } from "./overhead.ts";
import { benchRealtime } from "./realtime.ts";
import { benchRuntimes } from "./runtimes.ts";
import { benchSessions } from "./sessions.ts";
import { benchStorm } from "./storm.ts";
import { machine, svg, table } from "./report.ts";
import type { Figure } from "./stats.ts";
import { benchTransfers } from "./transfers.ts";
import { benchWorkflows } from "./workflows.ts";

const num = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const only = (process.env.BENCH_ONLY ?? "overhead,cli,dispatch,burst,fleet,transfers,footprint,storm,fairshare,auth,runtimes,logflood,realtime,workflows,sessions").split(",");

async function main() {
  const figures: Figure[] = [];
  const section = async (name: string, fn: () => Promise<Figure[]>) => {
    if (!only.includes(name)) return;
    process.stderr.write(`bench: ${name}…\n`);
    try {
      figures.push(...(await fn()));
    } catch (err) {
      process.stderr.write(`bench: ${name} failed: ${(err as Error).message}\n`);
    }
  };
  // These sections share one control plane and need the runner images; fleet, storm and
  // fairshare start their own control planes and run no containers.
  if (["overhead", "cli", "footprint", "transfers", "dispatch", "burst", "logflood", "realtime", "workflows", "sessions"].some((s) => only.includes(s))) {
    await ensureRunnerImages();
    const cp = await benchControlPlane();
    try {
      await section("overhead", () => benchOverhead(cp, num("BENCH_RUNS", 15)));
      await section("cli", () => benchCli(cp, num("BENCH_RUNS", 15)));
      await section("footprint", () => benchFootprint(cp, 10_000, 20_000));
      await section("transfers", () => benchTransfers(cp, num("BENCH_MIB", 256), 3));
      await section("burst", () => benchBurst(cp, num("BENCH_BURST_JOBS", 60)));
      await section("logflood", () => benchLogFlood(cp, num("BENCH_LOG_LINES", 100_000)));
      await section("realtime", () => benchRealtime(cp, { latencyLines: 200, floodLines: num("BENCH_REALTIME_LINES", 5000), followers: num("BENCH_REALTIME_FOLLOWERS", 50), limitMs: 4 * 60_000 }));
      await section("dispatch", () => benchDispatch(cp, { agents: 50, slots: 4, jobs: num("BENCH_JOBS", 5000), pacedJobs: 200, limitMs: 15 * 60_000 }));
      await section("workflows", () =>
        benchWorkflows(cp, { arrayTasks: num("BENCH_ARRAY_TASKS", 10_000), batchJobs: 1000, jobs: num("BENCH_WORKFLOW_JOBS", 2000), agents: 20, slots: 4, limitMs: 10 * 60_000 }),
      );
      await section("sessions", () => benchSessions(cp, { requests: num("BENCH_SESSION_REQUESTS", 500), downloadMiB: 64, echoes: 300, jupyterRuns: num("BENCH_JUPYTER_RUNS", 3), limitMs: 10 * 60_000 }));
    } finally {
      await cp.stop();
    }
  }
  // No control plane: the agent's runner, on this machine's engine, under each of its runtimes.
  await section("runtimes", async () => (await ensureRunnerImages(), benchRuntimes(num("BENCH_RUNTIME_RUNS", 7))));
  await section("fleet", () => benchFleet(num("BENCH_AGENTS", 2000), 20_000));
  await section("auth", () => benchAuth(num("BENCH_AUTH_ROUNDS", 500), 3 * 60_000));
  await section("fairshare", () => benchFairShare({ jobs: num("BENCH_FAIRSHARE_JOBS", 1000), agents: 10, slots: 4, runMs: 250, limitMs: 5 * 60_000 }));
  await section("storm", () => benchStorm({ agents: num("BENCH_STORM_AGENTS", 5000), jobs: num("BENCH_STORM_JOBS", 1000), downMs: num("BENCH_STORM_DOWN_S", 0) * 1000, limitMs: 10 * 60_000 }));

  // A partial run (BENCH_ONLY) keeps the other sections' last figures.
  const previous = join(ROOT, "bench", "results", "latest.json");
  if (process.env.BENCH_ONLY && existsSync(previous)) {
    const kept = (JSON.parse(readFileSync(previous, "utf8")) as { figures: Figure[] }).figures.filter((f) => !only.some((o) => f.section.endsWith(o)));
    figures.unshift(...kept);
  }
  const when = new Date().toISOString();
  const host = machine();
  const out = join(ROOT, "bench", "results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "latest.json"), JSON.stringify({ when, machine: host, figures }, null, 2) + "\n");
  writeFileSync(join(out, "latest.svg"), svg(figures, `gridx bench — ${when.slice(0, 10)} — ${host}`));
  process.stdout.write(`gridx bench, ${when}\nmachine: ${host}\n\n${table(figures)}\n\nwrote bench/results/latest.json and bench/results/latest.svg\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
