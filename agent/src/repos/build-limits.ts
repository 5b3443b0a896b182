import { access, mkdir, readdir, rmdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { BuildConfinement, DockerEngine, EngineAddress } from "../docker/engine.ts";
import type { EngineInfo } from "../docker/types.ts";
import type { Logger } from "../logger.ts";

/** What each environment build may use, and all of this agent's builds at once together. */
export interface BuildLimits {
  cpus: number;
  memoryMb: number;
  /** Processes (threads included) across every RUN step running at once. */
  pids: number;
  timeoutMs: number;
  /** The built image's size, its base image's layers included. */
  maxImageBytes: number;
}

/**
 * Open files per process in a RUN step, as a job gets. Left alone, Docker passes on dockerd's
 * own (often 1M); more than dockerd's hard limit would fail every step (no CAP_SYS_RESOURCE).
 */
const BUILD_ULIMITS = [{ Name: "nofile", Soft: 4096, Hard: 4096 }];
const CPU_PERIOD_US = 100_000;
const MIB = 1024 * 1024;
const CGROUP_ROOT = "/sys/fs/cgroup";

/**
 * The cgroup this agent's RUN steps are made under (its `pids.max`, memory and CPU bind them
 * all together), or why there is none: builds then keep their own memory, CPU, time and size
 * limits, which the engine sets, but not the process limit.
 */
export type BuildCgroup = { ok: true; parent: string } | { ok: false; why: string };

/** How the engine runs cgroups, and whether it runs on this machine (so its cgroup files are ours to write). */
export interface CgroupHost {
  info: Pick<EngineInfo, "CgroupVersion" | "CgroupDriver"> | null;
  local: boolean;
  /** Where the cgroup filesystem is mounted. */
  root: string;
}

/** The per-agent parent cgroup's name, as the engine takes it (`cgroupparent`): a cgroupfs path. */
export const buildCgroupPath = (instance: string) => `/gridx-build-${instance}`;

/**
 * Makes (or updates, on a restart) this agent's build cgroup with `limits`, on cgroup v1 or v2
 * under dockerd's `cgroupfs` driver. With the `systemd` driver, a remote engine or files the
 * agent may not write, it makes none and says why.
 */
export async function prepareBuildCgroup(host: CgroupHost, instance: string, limits: BuildLimits): Promise<BuildCgroup> {
  if (!host.local) return { ok: false, why: "the Docker engine is on another machine (DOCKER_HOST=tcp://…), whose cgroups the agent cannot write" };
  if (!host.info?.CgroupDriver) return { ok: false, why: "the engine did not say which cgroup driver it uses" };
  if (host.info.CgroupDriver !== "cgroupfs") return { ok: false, why: `dockerd uses the ${host.info.CgroupDriver} cgroup driver; the agent makes its build cgroup only under cgroupfs` };
  const parent = buildCgroupPath(instance);
  const name = parent.slice(1);
  const memory = String(limits.memoryMb * MIB);
  const quota = String(Math.round(limits.cpus * CPU_PERIOD_US));
  // [file, value, whether it may be missing]: swap files exist only where swap is accounted.
  let writes: [string, string, boolean?][];
  if (host.info.CgroupVersion === "2") {
    const dir = join(host.root, name);
    writes = [
      // The step containers below need these controllers handed down from the root and from ours.
      [join(host.root, "cgroup.subtree_control"), "+pids +memory +cpu"],
      [join(dir, "cgroup.subtree_control"), "+pids +memory +cpu"],
      [join(dir, "pids.max"), String(limits.pids)],
      [join(dir, "memory.max"), memory],
      [join(dir, "memory.swap.max"), "0", true],
      [join(dir, "cpu.max"), `${quota} ${CPU_PERIOD_US}`],
    ];
  } else {
    writes = [
      [join(host.root, "pids", name, "pids.max"), String(limits.pids)],
      [join(host.root, "memory", name, "memory.limit_in_bytes"), memory],
      [join(host.root, "cpu", name, "cpu.cfs_period_us"), String(CPU_PERIOD_US)],
      [join(host.root, "cpu", name, "cpu.cfs_quota_us"), quota],
    ];
  }
  for (const [file, value, optional] of writes) {
    try {
      await mkdir(dirname(file), { recursive: true });
      if (optional && !(await exists(file))) continue;
      await writeFile(file, value);
    } catch (err) {
      return { ok: false, why: `the agent cannot write ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); run it as root, or see docs/security.md` };
    }
  }
  return { ok: true, parent };
}

/**
 * Removes the build cgroup, under every controller (the engine made it under those the agent
 * did not), once no build is left in it; one still in use stays, and the next start reuses it.
 */
export async function removeBuildCgroup(cgroup: BuildCgroup, root = CGROUP_ROOT): Promise<void> {
  if (!cgroup.ok) return;
  const name = cgroup.parent.slice(1);
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  const dirs = [join(root, name), ...entries.filter((e) => e.isDirectory()).map((e) => join(root, e.name, name))];
  await Promise.all(dirs.map((dir) => rmdir(dir).catch(() => undefined)));
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** The engine-side confinement of one build: its limits, its network, the agent's cgroup if it has one. */
export function buildConfinement(limits: BuildLimits, networkMode: string, cgroup: BuildCgroup): BuildConfinement {
  return {
    memoryBytes: limits.memoryMb * MIB,
    memswapBytes: limits.memoryMb * MIB,
    cpuQuotaUs: Math.round(limits.cpus * CPU_PERIOD_US),
    cpuPeriodUs: CPU_PERIOD_US,
    networkMode,
    ulimits: BUILD_ULIMITS,
    ...(cgroup.ok && { cgroupParent: cgroup.parent }),
  };
}

/** The line a build's output opens with, so whoever reads a failure knows what bounded it. */
export function describeLimits(limits: BuildLimits, cgroup: BuildCgroup): string {
  const pids = cgroup.ok ? `${limits.pids} processes` : `no process limit (${cgroup.why})`;
  return `[gridx: build limits: ${limits.cpus} CPUs, ${limits.memoryMb} MiB memory (no swap), ${pids}, ${Math.round(limits.timeoutMs / 1000)} s, an image of at most ${gib(limits.maxImageBytes)}; each build, and all of this agent's builds together]`;
}

/** What a build that failed in a step is told: Docker's message, the step's last words, and the limit it most likely met. */
export interface StepFailure {
  /** Docker's error ("The command '/bin/sh -c …' returned a non-zero code: 137"). */
  error: string;
  /** The exit code Docker reports for the step, if any. */
  code?: number;
  /** The step's last lines of output, oldest first (a few: several processes may be dying at once). */
  tail: string[];
}

const FORK_FAILED = /Resource temporarily unavailable|can't fork|fork: retry|BlockingIOError/i;

/**
 * The failure as one bounded line (it travels in a job's failure message, 4000 characters at
 * most). Exit code 137 is SIGKILL, which in a build is almost always the memory limit; a
 * fork that failed is the process limit.
 */
export function explainStepFailure(f: StepFailure, limits: BuildLimits, cgroup: BuildCgroup): string {
  const parts = [cut(f.error.trim(), 1500)];
  const forkFailed = f.tail.find((l) => FORK_FAILED.test(l));
  if (f.code === 137) parts.push(`killed (SIGKILL): most likely a step went over the build memory limit of ${limits.memoryMb} MiB (--build-memory-mb)`);
  else if (forkFailed) parts.push(`a step could not start more processes: ${cgroup.ok ? `the build process limit is ${limits.pids} (--build-pids)` : "the machine ran out of them"}`);
  const said = forkFailed ?? f.tail.at(-1);
  if (said) parts.push(`${said === forkFailed ? "output" : "last output"}: ${cut(said.trim(), 500)}`);
  return parts.join("; ");
}

/** The image's size over the bound, as the build's failure; null when it keeps to it. */
export function oversize(imageBytes: number, limits: BuildLimits): string | null {
  return imageBytes > limits.maxImageBytes ? `the environment image is ${gib(imageBytes)}, over this agent's bound of ${gib(limits.maxImageBytes)} (--build-max-gb); it was removed` : null;
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(bytes < 1024 ** 3 ? 2 : 1)} GiB`;
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * This agent's build cgroup on the engine it talks to, said once in the log: where it is, or
 * why builds go without the process bound.
 */
export async function confineBuilds(docker: DockerEngine, address: EngineAddress, instance: string, limits: BuildLimits, log: Logger): Promise<BuildCgroup> {
  const info = await docker.info().catch(() => null);
  const cgroup = await prepareBuildCgroup({ info, local: "socketPath" in address, root: CGROUP_ROOT }, instance, limits);
  if (cgroup.ok) log.info("environment builds are confined", { cgroup: cgroup.parent, cpus: limits.cpus, memory_mb: limits.memoryMb, pids: limits.pids });
  else log.warn("environment builds run without a process limit (their memory, CPU, time and size limits still hold)", { reason: cgroup.why });
  return cgroup;
}
