import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startControlPlane, writeSecretsFile, type ControlPlane } from "../scripts/local-grid.ts";

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

/** Resident memory (bytes) and CPU seconds of a process and all its descendants. */
export async function processTreeUsage(rootPid: number): Promise<{ rssBytes: number; cpuSeconds: number }> {
  const { readdirSync, readFileSync } = await import("node:fs");
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // gone
    }
  }
  const tree = new Set([rootPid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (tree.has(ppid) && !tree.has(pid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  const ticks = 100;
  let rss = 0;
  let cpu = 0;
  for (const pid of tree) {
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

/** RSS now, and the CPU share used over a window, of a process tree. */
export async function idleUsage(pid: number, windowMs: number) {
  const before = await processTreeUsage(pid);
  await new Promise((r) => setTimeout(r, windowMs));
  const after = await processTreeUsage(pid);
  return { rssMb: after.rssBytes / 1048576, cpuPercent: ((after.cpuSeconds - before.cpuSeconds) / (windowMs / 1000)) * 100 };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
