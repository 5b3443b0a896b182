import { readFileSync } from "node:fs";
import { TERMINAL_STATUSES } from "../protocol/index.ts";
import { issueAgentToken } from "../scripts/local-grid.ts";
import { benchControlPlane, call, jobCounts, killTree, listJobs, runtimeUrl, processTreeUsage, sleep, submitJobs, until, type BenchPlane } from "./grid.ts";
import { SimAgent } from "./sim-agent.ts";
import { median, p99, round, type Figure } from "./stats.ts";

export interface StormOptions {
  agents: number;
  /** Jobs started before the crash, one per agent at most (each agent has one slot). */
  jobs: number;
  /** How long the control plane stays down before it starts again (0: at once). */
  downMs: number;
  /** The bound on each wait (connect, start, reconnect, finish). */
  limitMs: number;
}

const SECTION = "6 storm";
const POOL = "bench-storm";
/**
 * Descriptors beyond those of the agents' sockets (files, HTTP clients, pipes). The runtime,
 * which inherits this process's limit, holds two per agent socket.
 */
const FD_MARGIN = 1024;
const FDS_PER_AGENT = 2;

/** The soft limit on open files, which the kernel enforces on this process's sockets. */
function openFileLimit(): number {
  const line = /^Max open files\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1];
  return line === undefined || line === "unlimited" ? Infinity : Number(line);
}

/** CPU seconds so far of the control plane's workerd processes, and of its whole tree. */
async function cpuSoFar(cp: BenchPlane): Promise<{ workerd: number; all: number }> {
  return { workerd: (await processTreeUsage(cp.process.pid!, "workerd")).cpuSeconds, all: (await processTreeUsage(cp.process.pid!)).cpuSeconds };
}

/**
 * Each job must have run once, on its first attempt: one attempt, finished, and the job
 * completed. Returns the attempts that were lost or came after the first (requeues).
 */
async function requeuesOf(cp: BenchPlane, ids: string[]): Promise<{ requeues: number; completedOnce: number }> {
  let requeues = 0;
  let completedOnce = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < ids.length) {
        const id = ids[next++]!;
        const [job, { attempts }] = await Promise.all([
          call<{ status: string; attempt: number }>(cp, "GET", `/v1/jobs/${id}`),
          call<{ attempts: { attempt: number; status: string }[] }>(cp, "GET", `/v1/jobs/${id}/attempts`),
        ]);
        requeues += attempts.filter((a) => a.attempt > 1 || a.status === "lost").length;
        if (job.status === "completed" && job.attempt === 1 && attempts.length === 1 && attempts[0]!.status === "finished") completedOnce++;
      }
    }),
  );
  return { requeues, completedOnce };
}

/**
 * 6. Reconnect storm: agents connected, a share of them running jobs, then the control plane
 * crashes (SIGKILL to wrangler and workerd, no shutdown) and starts again on the same state.
 * Every agent redials with the agent's backoff and full jitter and says hello with the jobs it
 * still runs. Measured: the time until all are back, jobs lost, requeues the outage caused
 * (the coordinator owes every worker a full WORKER_TIMEOUT_S after its own outage), and the
 * control plane's CPU meanwhile; then the agents finish their jobs and each must have
 * completed once, on attempt 1.
 */
export async function benchStorm(opts: StormOptions): Promise<Figure[]> {
  if (opts.jobs > opts.agents) throw new Error(`storm: ${opts.jobs} jobs need as many agents (one slot each), not ${opts.agents}`);
  const fds = openFileLimit();
  const needed = FDS_PER_AGENT * opts.agents + FD_MARGIN;
  if (fds < needed) throw new Error(`storm: ${opts.agents} agents need ${needed} open files in the runtime, the limit is ${fds}; raise it (ulimit -n) or set BENCH_STORM_AGENTS`);

  let cp = await benchControlPlane();
  const token = await issueAgentToken(cp, "storm", POOL);
  // The agents dial the runtime, not wrangler dev's proxy (see runtimeUrl), at the address it has now.
  let target = await runtimeUrl(cp);
  const agents = Array.from({ length: opts.agents }, (_, i) => new SimAgent(() => target, token, `storm-${i}`, 1, { hold: true }));
  const count = (pred: (a: SimAgent) => boolean) => agents.reduce((n, a) => n + (pred(a) ? 1 : 0), 0);
  try {
    // Joined a hundred at a time: the storm is the reconnect, not a cold start.
    for (let i = 0; i < agents.length; i += 100) {
      const batch = agents.slice(i, i + 100);
      batch.forEach((a) => a.start());
      await until(() => batch.every((a) => a.connectedAt !== null), opts.limitMs, `agents ${i}–${i + batch.length - 1} to connect`);
    }
    await submitJobs(cp, POOL, opts.jobs, 32);
    await until(async () => count((a) => a.running > 0) === opts.jobs && (await jobCounts(cp, POOL)).running === opts.jobs, opts.limitMs, `${opts.jobs} jobs to run`, 250);
    const ids = (await listJobs(cp, POOL)).map((j) => j.id);
    process.stderr.write(`bench: storm: ${opts.agents} agents connected, ${opts.jobs} jobs running; killing the control plane\n`);

    const dials = () => agents.reduce((n, a) => n + a.dials, 0);
    const dialsBefore = dials();
    const killedAt = Date.now();
    await killTree(cp.process.pid!);
    await until(() => agents.every((a) => a.connectedAt === null), opts.limitMs, "every agent to see its socket close");
    await sleep(opts.downMs);
    cp = await benchControlPlane({ port: cp.port, dir: cp.dir });
    const healthyAt = Date.now();
    target = await runtimeUrl(cp);
    const cpu0 = await cpuSoFar(cp);
    // An agent may get in while the health check is still polling: any hello_ack after the kill counts.
    const back = (a: SimAgent) => a.connectedAt !== null && a.connectedAt > killedAt;
    await until(() => agents.every(back), opts.limitMs, `${opts.agents} agents to reconnect`);
    const allBackAt = Date.now();
    const stormDials = dials() - dialsBefore;
    const cpu1 = await cpuSoFar(cp);
    const [cpu, cpuTree] = [cpu1.workerd - cpu0.workerd, cpu1.all - cpu0.all];
    const reconnects = agents.map((a) => Math.max(0, a.connectedAt! - healthyAt));

    const after = await listJobs(cp, POOL);
    const lost = after.filter((j) => j.status !== "running" && j.status !== "completed").length;
    process.stderr.write(`bench: storm: all back in ${((allBackAt - healthyAt) / 1000).toFixed(1)} s, ${lost} jobs lost; finishing the jobs\n`);

    agents.forEach((a) => a.finishJobs());
    const settled = async () => {
      const counts = await jobCounts(cp, POOL);
      return TERMINAL_STATUSES.reduce((n, s) => n + (counts[s] ?? 0), 0) === opts.jobs;
    };
    await until(async () => count((a) => a.holding > 0) === 0 && (await settled()), opts.limitMs, `${opts.jobs} jobs to end`, 250);
    const { requeues, completedOnce } = await requeuesOf(cp, ids);
    const canceled = agents.reduce((n, a) => n + a.canceled, 0);
    const window = (allBackAt - healthyAt) / 1000;
    return [
      { section: SECTION, name: `control plane down (kill -9${opts.downMs ? `, ${opts.downMs / 1000} s held down` : ""} → healthy on the same state)`, value: round((healthyAt - killedAt) / 1000, 2), unit: "s" },
      { section: SECTION, name: `all ${opts.agents} agents reconnected (healthy → last hello_ack)`, value: round(window, 2), unit: "s" },
      { section: SECTION, name: "connections the agents opened, kill → last hello_ack", value: stormDials, unit: "dials" },
      { section: SECTION, name: "agent reconnect after restart p50", value: round(median(reconnects) / 1000, 2), unit: "s" },
      { section: SECTION, name: "agent reconnect after restart p99", value: round(p99(reconnects) / 1000, 2), unit: "s" },
      { section: SECTION, name: `jobs lost of ${opts.jobs} running (not running or completed after the storm)`, value: lost, unit: "jobs", target: "= 0" },
      { section: SECTION, name: "requeues caused (attempts lost or after the first)", value: requeues, unit: "attempts", target: "= 0" },
      { section: SECTION, name: "held jobs the coordinator canceled on reconnect", value: canceled, unit: "jobs", target: "= 0" },
      { section: SECTION, name: `jobs completed exactly once, on attempt 1, of ${opts.jobs}`, value: completedOnce, unit: "jobs", target: `= ${opts.jobs}` },
      { section: SECTION, name: "control plane CPU during the reconnect (workerd)", value: round(cpu, 1), unit: "CPU s" },
      { section: SECTION, name: "control plane CPU share during the reconnect (workerd)", value: round((cpu / Math.max(window, 0.001)) * 100), unit: "% of a core" },
      { section: SECTION, name: "control plane CPU share during the reconnect (wrangler + workerd)", value: round((cpuTree / Math.max(window, 0.001)) * 100), unit: "% of a core" },
    ];
  } finally {
    agents.forEach((a) => a.stop());
    await cp.stop();
  }
}
