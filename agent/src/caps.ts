import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import os from "node:os";
import { promisify } from "node:util";
import type { DockerEngine } from "./docker/engine.ts";
import { OCI_RUNTIME, Runtime, type GpuDevice, type Labels, type WorkerCaps } from "../../protocol/index.ts";

const run = promisify(execFile);

/** Parses `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(csv: string): GpuDevice[] {
  return csv
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .map((line) => {
      const [index, model, memory] = line.split(",").map((s) => s.trim());
      return { index: Number(index), model: model ?? "unknown", memory_mb: Math.round(Number(memory)) || 0 };
    })
    .filter((g) => Number.isInteger(g.index));
}

async function detectGpus(): Promise<GpuDevice[]> {
  try {
    const { stdout } = await run("nvidia-smi", ["--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"], { timeout: 10_000 });
    return parseNvidiaSmi(stdout);
  } catch {
    return [];
  }
}

async function isWsl(): Promise<boolean> {
  try {
    return /microsoft/i.test(await readFile("/proc/version", "utf8"));
  } catch {
    return false;
  }
}

export interface CapsOverrides {
  cpus?: number;
  memoryMb?: number;
  labels: Labels;
  /** Whether the agent's filtered egress network is set up (see sandbox-net/). */
  egress?: boolean;
  /** Whether the agent can relay to jobs' ports (it found a static busybox, tunnel/busybox.ts). */
  ports?: boolean;
}

/** The runtimes of `Runtime` that dockerd has registered (its `Runtimes` in `GET /info`); runc is always there. */
export function runtimesOf(registered: Record<string, unknown> | undefined): Runtime[] {
  return Runtime.options.filter((r) => r === "runc" || Boolean(registered && OCI_RUNTIME[r] in registered));
}

/** What a job asking for `wanted` is told where the engine has only `registered`; null when it has it. */
export function runtimeMissing(wanted: Runtime, registered: Runtime[]): string | null {
  if (registered.includes(wanted)) return null;
  return `runtime "${wanted}" (${OCI_RUNTIME[wanted]}) is not registered with this machine's Docker engine; it has ${registered.join(", ")}`;
}

/**
 * Why a job with GPUs cannot run under `runtime` on this engine, or null. gVisor reaches
 * NVIDIA GPUs only through nvproxy (`runsc --nvproxy`), which older runsc (Debian 12's, of
 * 2022) does not have; without it the device would not work inside gVisor's kernel.
 */
export function gpuRuntimeProblem(runtime: Runtime, registered: Record<string, unknown> | undefined): string | null {
  if (runtime !== "gvisor") return null;
  const args = runscArgs(registered);
  return args.includes("--nvproxy") || args.includes("--nvproxy=true") ? null : `GPU jobs cannot run under gVisor here: runsc is not registered with --nvproxy (older runsc has no GPU support)`;
}

/** runsc's registered runtimeArgs, flags written `--name=value` whether they came with one dash or two. */
function runscArgs(registered: Record<string, unknown> | undefined): string[] {
  const runsc = registered?.[OCI_RUNTIME.gvisor] as { runtimeArgs?: unknown } | undefined;
  return (Array.isArray(runsc?.runtimeArgs) ? runsc.runtimeArgs : []).map((a) => String(a).replace(/^-+/, "--"));
}

/** The runtimeArgs runsc is registered with here, each with what gVisor jobs lose without it (docs/decisions/0012-gvisor.md). */
export const RUNSC_ARGS = {
  "--oci-seccomp": "the job seccomp profile is not applied inside gVisor (gVisor ignores it unless told)",
  "--host-fifo=open": "gVisor jobs start cold: a prestarted sandbox waits on a FIFO the agent made on the host, which gVisor opens only with it",
} as const;

/** The RUNSC_ARGS that `runsc`'s registration lacks; none when runsc is not registered. Flags count as `--name=value`, with one dash or two. */
export function runscArgsMissing(registered: Record<string, unknown> | undefined): (keyof typeof RUNSC_ARGS)[] {
  if (!registered?.[OCI_RUNTIME.gvisor]) return [];
  const args = runscArgs(registered);
  return (Object.keys(RUNSC_ARGS) as (keyof typeof RUNSC_ARGS)[]).filter((a) => !args.includes(a));
}

/** The registered runtimes whose python sandboxes can be prestarted: runc, and gVisor where runsc may open host FIFOs. */
export function prestartableRuntimes(registered: Record<string, unknown> | undefined): Runtime[] {
  const noFifo = runscArgsMissing(registered).includes("--host-fifo=open");
  return runtimesOf(registered).filter((r) => r !== "gvisor" || !noFifo);
}

/** What this machine offers, capped by what the operator chose to give the grid. */
export async function detectCaps(docker: DockerEngine, overrides: CapsOverrides): Promise<WorkerCaps> {
  const [gpus, wsl, info] = await Promise.all([detectGpus(), isWsl(), docker.info().catch(() => null)]);
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  const memoryMb = Math.floor(os.totalmem() / (1024 * 1024));
  return {
    cpu_cores: overrides.cpus ? Math.min(overrides.cpus, cores) : cores,
    memory_mb: overrides.memoryMb ? Math.min(overrides.memoryMb, memoryMb) : memoryMb,
    gpus,
    nvidia_runtime: Boolean(info?.Runtimes && "nvidia" in info.Runtimes),
    labels: overrides.labels,
    os: `${os.type()} ${os.release()}`,
    arch: os.arch(),
    wsl,
    runtimes: runtimesOf(info?.Runtimes),
    egress: overrides.egress ?? false,
    ports: overrides.ports ?? false,
  };
}
