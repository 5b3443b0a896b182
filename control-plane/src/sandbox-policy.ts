import { imageMatches, type AttemptSandbox, type JobSpec, type PoolSandbox, type WorkerCaps } from "../../protocol/index.ts";
import { offersSandbox } from "./coordinator/scheduler.ts";

/** Why a pool's policy refuses a job: the request field at fault and what to change. */
export interface SandboxRefusal {
  field: string;
  message: string;
}

/**
 * Whether a pool's sandbox policy admits a job as submitted: its runtime among the pool's, egress
 * only where the pool allows it, a command (or jupyter) image in ALLOWED_IMAGES or matching one of the pool's
 * patterns. Pure; submit (after `withPoolRuntime`) turns a refusal into a 400 naming the field.
 */
export function sandboxRefusal(spec: JobSpec, policy: PoolSandbox, allowedImages: readonly string[]): SandboxRefusal | null {
  const runtime = effectiveRuntime(spec);
  if (!policy.runtimes.includes(runtime)) {
    return { field: "runtime", message: `pool ${spec.pool} runs jobs under ${policy.runtimes.join(" or ")}, not ${runtime}` };
  }
  if (spec.network === "egress" && !policy.egress) {
    return { field: "network", message: `pool ${spec.pool} does not allow egress; the admin may allow it (PUT /v1/pools/${spec.pool}/sandbox {"egress": true})` };
  }
  // Debian's runsc has no nvproxy, so an agent would refuse the job; saying so now beats a failed job.
  if (spec.requirements.gpus > 0 && runtime === "gvisor") {
    return { field: "runtime", message: `GPU jobs run under runc: gVisor reaches GPUs only through nvproxy, which the agents' runsc lacks; submit with "runtime": "runc"` };
  }
  // Agents register runsc with --network=none (it refuses a `--network none` container's namespace otherwise), so a gVisor job has loopback only.
  if (spec.network === "egress" && runtime === "gvisor") {
    return { field: "network", message: `egress jobs run under runc: gVisor's runtime is registered without networking; submit with "runtime": "runc"` };
  }
  // A jupyter job without an image runs the agent's own runner image, as a python job does.
  const chosen = spec.task.kind === "command" ? { field: "command.image", image: spec.task.command.image } : spec.task.kind === "jupyter" && spec.task.jupyter.image ? { field: "jupyter.image", image: spec.task.jupyter.image } : null;
  if (chosen && !allowedImages.includes(chosen.image) && !policy.images.some((p) => imageMatches(chosen.image, p))) {
    const allowed = [...allowedImages, ...policy.images];
    return { field: chosen.field, message: `${chosen.image} is not an allowed image in pool ${spec.pool} (${allowed.join(", ") || "none"})` };
  }
  return null;
}

/** The runtime a job runs under: a spec stored before runtimes existed has none and ran under runc, so it still does (and a gVisor-only pool refuses it). */
export const effectiveRuntime = (spec: Pick<JobSpec, "runtime">) => spec.runtime ?? "runc";

/** The job as stored: the pool's default runtime filled in, so a later policy change does not move a queued job to another runtime. */
export const withPoolRuntime = (spec: JobSpec, policy: PoolSandbox): JobSpec => ({ ...spec, runtime: spec.runtime ?? policy.default_runtime });

/**
 * What an attempt's sandbox is: the job's runtime and network, and what the pool's policy lets
 * egress and builds reach now. Dispatch re-checks `sandboxRefusal` first, so a job the policy
 * stopped admitting since its submit fails rather than running with what was withdrawn.
 */
export function attemptSandbox(spec: JobSpec, policy: PoolSandbox): AttemptSandbox {
  return {
    runtime: effectiveRuntime(spec),
    network: spec.network,
    egress_allow: policy.egress_allow,
    build_network: policy.build_network,
    exec: policy.exec,
  };
}

/**
 * Why a queued job waits for its sandbox, when no online worker of its pool could ever run it
 * (its runtime, or the filtered egress network); null when one could. Pure.
 */
export function sandboxWait(spec: SandboxSpec, online: readonly SandboxWorker[]): string | null {
  const needs = sandboxNeeds(spec, online);
  return needs === null ? null : `no online worker in pool ${spec.pool} offers ${needs}`;
}

type SandboxSpec = Pick<JobSpec, "pool" | "runtime" | "network"> & Partial<Pick<JobSpec, "ports">>;
type SandboxWorker = { caps: Pick<WorkerCaps, "runtimes" | "egress"> & Partial<Pick<WorkerCaps, "ports">> };

/** What of a job's sandbox none of `workers` offers ("gvisor and the filtered egress network"); null when one offers it all. Pure. */
export function sandboxNeeds(spec: SandboxSpec, workers: readonly SandboxWorker[]): string | null {
  const sandbox = { runtime: effectiveRuntime(spec), network: spec.network, ports: (spec.ports?.length ?? 0) > 0 };
  if (workers.some((w) => offersSandbox(w, sandbox))) return null;
  const needs = [sandbox.runtime !== "runc" && sandbox.runtime, sandbox.network === "egress" && "the filtered egress network", sandbox.ports && "ports (an agent with busybox-static)"]
    .filter(Boolean)
    .join(" and ");
  return needs || "runc";
}
