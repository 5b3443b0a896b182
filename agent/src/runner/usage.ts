import { mkdir, readdir, readFile, rmdir } from "node:fs/promises";
import { join } from "node:path";
import type { AttemptUsage } from "../../../protocol/index.ts";
import type { DockerEngine, EngineAddress } from "../docker/engine.ts";
import type { Logger } from "../logger.ts";
import type { CgroupHost } from "../repos/build-limits.ts";

const CGROUP_ROOT = "/sys/fs/cgroup";
const MIB = 1024 * 1024;

/** What a container's cgroup had counted when it exited. */
export interface CgroupUsage {
  cpuS: number;
  peakMemoryMb: number;
}

/** This installation's cgroup, under which each container's parent cgroup is made. */
export const usageCgroupBase = (instance: string) => `/gridx-jobs-${instance}`;

/**
 * One parent cgroup per container the runner makes, under this installation's own. The engine
 * removes a container's own cgroup as it exits, so Docker's stats read nothing after the exit
 * (and its stats stream, a sample a second, misses a job shorter than that, and the last
 * second of any). A parent outlives its container and is charged hierarchically with all of
 * it: CPU time (cpuacct.usage; cpu.stat on v2) and the memory high-water mark
 * (memory.max_usage_in_bytes; memory.peak on v2). Read once after the exit, then removed.
 */
export class UsageCgroups {
  constructor(
    private readonly root: string,
    private readonly version: "1" | "2",
    private readonly base: string,
  ) {}

  /** The `CgroupParent` a container named `name` is made with. */
  parent(name: string): string {
    return `${this.base}/${name}`;
  }

  /** What the container under `name` used, or null when it cannot be read (never throws). */
  async read(name: string): Promise<CgroupUsage | null> {
    const dir = (controller: string) => (this.version === "2" ? join(this.root, this.parent(name)) : join(this.root, controller, this.parent(name)));
    try {
      if (this.version === "2") {
        const stat = await readFile(join(dir(""), "cpu.stat"), "utf8");
        const usec = /^usage_usec (\d+)$/m.exec(stat)?.[1];
        return counted(Number(usec) / 1e6, Number(await readFile(join(dir(""), "memory.peak"), "utf8")));
      }
      const [ns, peak] = await Promise.all([readFile(join(dir("cpuacct"), "cpuacct.usage"), "utf8"), readFile(join(dir("memory"), "memory.max_usage_in_bytes"), "utf8")]);
      return counted(Number(ns) / 1e9, Number(peak));
    } catch {
      return null;
    }
  }

  /** Removes the parent of the container under `name`, in every hierarchy the engine made it in; one still in use stays. */
  async remove(name: string): Promise<void> {
    const bases = await this.bases();
    await Promise.all(bases.map((b) => rmdir(join(b, name)).catch(() => undefined)));
  }

  /** Removes every parent whose container is gone: a crashed run's leftovers. */
  async removeAll(): Promise<void> {
    for (const b of await this.bases()) {
      const entries = await readdir(b, { withFileTypes: true }).catch(() => []);
      await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => rmdir(join(b, e.name)).catch(() => undefined)));
    }
  }

  /** The base's folder in each hierarchy (v1 has one per controller, v2 one). */
  private async bases(): Promise<string[]> {
    if (this.version === "2") return [join(this.root, this.base)];
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isDirectory()).map((e) => join(this.root, e.name, this.base));
  }
}

function counted(cpuS: number, peakBytes: number): CgroupUsage | null {
  if (!Number.isFinite(cpuS) || !Number.isFinite(peakBytes) || cpuS < 0 || peakBytes < 0) return null;
  return { cpuS, peakMemoryMb: peakBytes / MIB };
}

/**
 * An attempt's usage as `job_result` reports it: its container's CPU time and peak memory,
 * GPU seconds as the GPUs it held times its wall time (they are its alone for the whole run),
 * and the wall time from its start (or a prestarted sandbox's go) to its exit.
 *
 * @example
 * attemptUsage({ cpuS: 1.0912, peakMemoryMb: 204.06 }, 2, 1500); // { cpu_s: 1.091, peak_memory_mb: 204.1, gpu_s: 3, wall_s: 1.5 }
 */
export function attemptUsage(cgroup: CgroupUsage, gpus: number, wallMs: number): AttemptUsage {
  const wallS = Math.max(0, wallMs) / 1000;
  return { cpu_s: round(cgroup.cpuS, 3), peak_memory_mb: round(cgroup.peakMemoryMb, 1), gpu_s: round(gpus * wallS, 3), wall_s: round(wallS, 3) };
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

/**
 * This installation's usage cgroups, or null (said once in the log) where the agent cannot
 * have them: a remote engine, the systemd cgroup driver, a cgroup filesystem it may not
 * write. Jobs then report no usage; they run the same.
 */
export async function openUsageCgroups(host: CgroupHost, instance: string): Promise<{ ok: true; cgroups: UsageCgroups } | { ok: false; why: string }> {
  if (!host.local) return { ok: false, why: "the Docker engine is on another machine, whose cgroups the agent cannot read" };
  if (host.info?.CgroupDriver !== "cgroupfs") return { ok: false, why: `dockerd uses the ${host.info?.CgroupDriver ?? "unknown"} cgroup driver; usage is read only under cgroupfs` };
  const version = host.info.CgroupVersion === "2" ? "2" : "1";
  const base = usageCgroupBase(instance);
  // The engine makes the rest as it needs them; these show the agent may make (and so remove) them.
  const made = version === "2" ? [join(host.root, base)] : [join(host.root, "cpuacct", base), join(host.root, "memory", base)];
  for (const dir of made) {
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      return { ok: false, why: `the agent cannot make ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
    }
  }
  return { ok: true, cgroups: new UsageCgroups(host.root, version, base) };
}

/** The usage cgroups of this agent's engine, or null with a warning saying why jobs report no usage. */
export async function trackUsage(docker: DockerEngine, address: EngineAddress, instance: string, log: Logger): Promise<UsageCgroups | null> {
  const info = await docker.info().catch(() => null);
  const opened = await openUsageCgroups({ info, local: "socketPath" in address, root: CGROUP_ROOT }, instance);
  if (opened.ok) return opened.cgroups;
  log.warn("jobs will report no CPU, memory or GPU usage", { reason: opened.why });
  return null;
}
