import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JobStatus } from "../protocol/index.ts";
import { freePort, runCommand, startControlPlane, writeSecretsFile, type ControlPlane } from "../scripts/local-grid.ts";

/** A control plane on fresh state, for one benchmark section. */
export type BenchPlane = ControlPlane & { dir: string; port: number };

export async function benchControlPlane(opts: { port?: number; dir?: string; vars?: Record<string, string> } = {}): Promise<BenchPlane> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "gridx-bench-"));
  const port = opts.port ?? (await freePort());
  const adminToken = "bench-admin";
  const cp = await startControlPlane({ port, adminToken, secretsFile: writeSecretsFile(join(dir, "secrets.env"), adminToken), persistTo: join(dir, "state"), vars: opts.vars });
  return Object.assign(cp, { dir, port });
}

/** One API call as a load script makes it: plain JSON in and out, any non-2xx is an error. */
// The benchmark reads loosely typed JSON bodies, as a script would.
// oxlint-disable-next-line typescript/no-explicit-any
export async function call<T = any>(cp: { url: string; adminToken: string }, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(new URL(path, cp.url), {
    method,
    headers: { authorization: `Bearer ${cp.adminToken}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : null) as T;
}

/** A process and all its descendants (pid → name), read from /proc. */
function processTree(rootPid: number): Map<number, string> {
  const procs = new Map<number, { ppid: number; comm: string }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      procs.set(Number(entry), { ppid, comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) });
    } catch {
      // gone
    }
  }
  const tree = new Map([[rootPid, procs.get(rootPid)?.comm ?? ""]]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, p] of procs) {
      if (tree.has(p.ppid) && !tree.has(pid)) {
        tree.set(pid, p.comm);
        grew = true;
      }
    }
  }
  return tree;
}

/**
 * Resident memory (bytes) and CPU seconds of a process and all its descendants, or of those
 * among them named `comm` (e.g. "workerd", leaving out wrangler's own Node process).
 */
export async function processTreeUsage(rootPid: number, comm?: string): Promise<{ rssBytes: number; cpuSeconds: number }> {
  const ticks = 100;
  let rss = 0;
  let cpu = 0;
  for (const [pid, name] of processTree(rootPid)) {
    if (comm !== undefined && name !== comm) continue;
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      rss += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      cpu += (Number(fields[11]) + Number(fields[12])) / ticks;
    } catch {
      // gone
    }
  }
  return { rssBytes: rss, cpuSeconds: cpu };
}

/**
 * A crash of the whole control plane: SIGKILL to wrangler and every process under it at once
 * (workerd would outlive a killed wrangler, holding its port and state). Resolves when none is
 * left running, within `limitMs`.
 */
export async function killTree(rootPid: number, limitMs = 10_000): Promise<void> {
  const pids = [...processTree(rootPid).keys()];
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const running = (pid: number) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return stat[stat.lastIndexOf(")") + 2] !== "Z";
    } catch {
      return false;
    }
  };
  await until(() => !pids.some(running), limitMs, `the control plane's processes (${pids.join(", ")}) to exit`);
}

/**
 * The Workers runtime's own address, behind wrangler dev's proxy. wrangler dev fronts the
 * runtime with a proxy worker in a second workerd, which holds four descriptors per open
 * socket where the runtime holds two: under this machine's hard limit of 20,000 open files
 * the proxy cannot carry 5,000 agents. The runtime's port is picked anew at each start; it
 * is the one, among the ports its workerd processes listen on, that answers /health.
 */
export async function runtimeUrl(cp: BenchPlane): Promise<string> {
  const pids = new Set([...processTree(cp.process.pid!)].filter(([, name]) => name === "workerd").map(([pid]) => pid));
  const listening = await runCommand("ss", ["-ltnpH"]);
  const ports = [...listening.matchAll(/127\.0\.0\.1:(\d+) .*?pid=(\d+),/g)].filter((m) => pids.has(Number(m[2])) && Number(m[1]) !== cp.port).map((m) => Number(m[1]));
  for (const port of ports) {
    const url = `http://127.0.0.1:${port}`;
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.ok && "protocol_version" in ((await res.json()) as object)) return url;
    } catch {
      // another of workerd's sockets (inspector, loopback)
    }
  }
  throw new Error(`no port of the control plane's workerd (${[...pids].join(", ")}) answers /health besides ${cp.port}`);
}

/** Waits for a condition, checked every `intervalMs`; throws naming it when `limitMs` runs out. */
export async function until(cond: () => boolean | Promise<boolean>, limitMs: number, what: string, intervalMs = 100): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`gave up waiting for ${what} after ${Math.round(limitMs / 1000)} s`);
    await sleep(intervalMs);
  }
}

/** A pool's jobs by state, from /metrics. */
export async function jobCounts(cp: BenchPlane, pool: string): Promise<Partial<Record<JobStatus, number>>> {
  const res = await fetch(`${cp.url}/metrics`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
  const counts: Partial<Record<JobStatus, number>> = {};
  for (const m of (await res.text()).matchAll(/^gridx_jobs\{pool="([^"]*)",state="(\w+)"\} (\d+)$/gm)) if (m[1] === pool) counts[m[2] as JobStatus] = Number(m[3]);
  return counts;
}

/** Submits `count` no-op python jobs to a pool from `concurrency` clients, one job per POST, with `extra` fields (e.g. a project). */
export async function submitJobs(cp: BenchPlane, pool: string, count: number, concurrency: number, extra: Record<string, unknown> = {}): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        await call(cp, "POST", "/v1/jobs", { kind: "python", pool, python: { script: "pass" }, ...extra });
      }
    }),
  );
}

/** What the benchmarks read of a job (the API's Job). */
export interface JobSummary {
  id: string;
  status: string;
  attempt: number;
  worker_id: string | null;
  created_at: string;
  assigned_at: string | null;
}

/** Every job of a pool, page by page. */
export async function listJobs(cp: BenchPlane, pool: string): Promise<JobSummary[]> {
  const out: JobSummary[] = [];
  let cursor = "";
  for (;;) {
    const page = await call<{ jobs: JobSummary[]; next_cursor: string | null }>(cp, "GET", `/v1/jobs?pool=${pool}&limit=200${cursor ? `&cursor=${cursor}` : ""}`);
    out.push(...page.jobs);
    if (!page.next_cursor) return out;
    cursor = page.next_cursor;
  }
}

/** RSS now, and the CPU share used over a window, of a process tree. */
export async function idleUsage(pid: number, windowMs: number) {
  const before = await processTreeUsage(pid);
  await new Promise((r) => setTimeout(r, windowMs));
  const after = await processTreeUsage(pid);
  return { rssMb: after.rssBytes / 1048576, cpuPercent: ((after.cpuSeconds - before.cpuSeconds) / (windowMs / 1000)) * 100 };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
