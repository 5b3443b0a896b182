import type { ContainerCreateOptions, ContainerResources } from "../docker/types.ts";
import { OCI_RUNTIME, type JobLimits, type JobSpec, type Runtime } from "../../../protocol/index.ts";
import { JOB_SECCOMP } from "./seccomp.ts";
import type { EgressAttachment } from "../sandbox-net/egress.ts";
import { RELAY_BUSYBOX_PATH } from "../tunnel/reach.ts";

/** The uid:gid every job runs as; never root. */
export const JOB_USER = "1000:1000";

export const LABELS = {
  managed: "gridx.managed",
  /** The agent's display name, for people; never used to decide whose a container is. */
  agent: "gridx.agent",
  /** The agent installation's id (`agentInstance`): what cleanup and the lease warden go by. */
  instance: "gridx.instance",
  jobId: "gridx.job_id",
  attempt: "gridx.attempt",
  /** Started ahead of its job; it carries no job's labels, only its name says whose it became. */
  prestarted: "gridx.prestarted",
} as const;

export interface SandboxInput {
  name: string;
  image: string;
  /** argv replacing the image's entrypoint; null keeps the image's own. */
  argv: string[] | null;
  env: Record<string, string>;
  limits: JobLimits;
  gpuIndices: number[];
  inputDir: string;
  outputDir: string;
  /** A repo job's code: mounted read-only at /work/code, which becomes the working directory. */
  codeDir: string | null;
  tmpfsMb: number;
  labels: Record<string, string>;
  /** Made with it, the container keeps it: a prestarted sandbox serves only jobs of its runtime. */
  runtime: Runtime;
  /** The filtered egress network the job joins (sandbox-net/); absent: no network at all. */
  network?: EgressAttachment;
  /** The parent cgroup that keeps the container's usage after it exits (usage.ts); absent: the engine's default. */
  cgroupParent?: string;
  /** The host's static busybox, mounted read-only at RELAY_BUSYBOX_PATH for the tunnel's relays (a job with ports). */
  relayBusybox?: string;
}

/**
 * The container a job runs in, locked down as PRODUCT.md's container contract says: read-only
 * root, no capabilities, no privilege gain, JOB_SECCOMP, the runtime the job asked for
 * (runc or gVisor), bounded pids, CPU and memory, no network (or the
 * filtered egress network, for a job allowed it), a non-root user, a small tmpfs for /tmp,
 * and no host path but the job's own folders (input and code read-only).
 * Pure, so every flag is checked by a unit test.
 */
export function containerOptions(s: SandboxInput): ContainerCreateOptions {
  return {
    name: s.name,
    Image: s.image,
    ...(s.argv ? { Entrypoint: s.argv.slice(0, 1), Cmd: s.argv.slice(1) } : {}),
    Env: Object.entries(s.env).map(([k, v]) => `${k}=${v}`),
    User: JOB_USER,
    WorkingDir: s.codeDir ? "/work/code" : "/work/output",
    Labels: s.labels,
    NetworkDisabled: !s.network,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    HostConfig: {
      Binds: [
        `${s.inputDir}:/work/input:ro`,
        `${s.outputDir}:/work/output:rw`,
        ...(s.codeDir ? [`${s.codeDir}:/work/code:ro`] : []),
        ...(s.relayBusybox ? [`${s.relayBusybox}:${RELAY_BUSYBOX_PATH}:ro`] : []),
      ],
      NetworkMode: s.network?.name ?? "none",
      // Not left to the engine's version: with IPv6 on, link-local addresses would reach past the IPv4 filter.
      ...(s.network?.disableIpv6 ? { Sysctls: { "net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1" } } : {}),
      ReadonlyRootfs: true,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges:true", JOB_SECCOMP[s.runtime]],
      Runtime: OCI_RUNTIME[s.runtime],
      ...(s.cgroupParent && { CgroupParent: s.cgroupParent }),
      ...resources(s.limits),
      Tmpfs: { "/tmp": `rw,noexec,nosuid,nodev,size=${s.tmpfsMb}m` },
      Ulimits: [{ Name: "nofile", Soft: 4096, Hard: 4096 }],
      IpcMode: "private",
      // A tiny init as PID 1 forwards SIGTERM to the job, so a stop is graceful, not a SIGKILL after the grace.
      Init: true,
      Privileged: false,
      AutoRemove: false,
      LogConfig: { Type: "none", Config: {} },
      DeviceRequests: s.gpuIndices.length ? [{ Driver: "nvidia", DeviceIDs: s.gpuIndices.map(String), Capabilities: [["gpu"]] }] : [],
    },
  };
}

/** A job's limits as the engine's resource fields; swap equal to memory means no swap. */
function resources(limits: JobLimits): Required<ContainerResources> {
  const memory = limits.memory_mb * 1024 * 1024;
  return { Memory: memory, MemorySwap: memory, NanoCpus: Math.round(limits.cpus * 1e9), PidsLimit: limits.pids };
}

/**
 * The limits a job's container gets: never more CPU or memory than the worker reserved for it.
 * The control plane raises a reservation below the limits to them at submit; a spec stored
 * before it did is held to its reservation here, so no worker is over-committed either way.
 */
export function withinReservation(spec: Pick<JobSpec, "limits" | "requirements">): JobLimits {
  const { limits, requirements } = spec;
  return { ...limits, cpus: Math.min(limits.cpus, requirements.cpus), memory_mb: Math.min(limits.memory_mb, requirements.memory_mb) };
}

/**
 * What `POST /containers/{id}/update` must change for a container made with `current` limits
 * to hold a job that asks for `wanted`; null when they already agree. The timeout is the
 * agent's to enforce, not the engine's, so it never needs an update.
 */
export function limitsUpdate(current: JobLimits, wanted: JobLimits): ContainerResources | null {
  const from = resources(current);
  const to = resources(wanted);
  const same = (Object.keys(to) as (keyof ContainerResources)[]).every((k) => from[k] === to[k]);
  return same ? null : to;
}
