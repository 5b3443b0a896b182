import { gpuRuntimeProblem, runtimeMissing, runtimesOf } from "../caps.ts";
import type { EngineInfo } from "../docker/types.ts";
import type { EgressNetworks } from "../sandbox-net/egress.ts";
import { jobUserOnHost, type HostIds } from "./job-folder.ts";
import { failedStep, type Verdict } from "./outcome.ts";
import type { RunRequest } from "./runner.ts";

export interface PreflightDeps {
  /** The agent's filtered networks; absent when it runs without them. */
  egress: EgressNetworks | undefined;
  /** What the engine says of itself (asked once by the runner). */
  info: () => Promise<EngineInfo>;
  /** The static busybox relaying to jobs' ports; absent, a job with ports cannot run here. */
  relayBusybox: string | undefined;
}

/** A job this machine can run, with the host ids its user gets; or why it cannot, before anything is fetched or built for it. */
export type Preflight = { ok: true; jobUser: HostIds } | { ok: false; verdict: Verdict };

/**
 * Whether this machine can give the job its sandbox: egress where it asks for it, its runtime
 * (GPUs included) registered with the engine, and the job user's ids on the host (they differ
 * under userns-remap).
 */
export async function preflight(deps: PreflightDeps, req: RunRequest): Promise<Preflight> {
  const noEgress = req.sandbox.network === "egress" ? (deps.egress ? deps.egress.unavailable : "it runs without egress networks") : null;
  if (noEgress) return { ok: false, verdict: { exit_code: null, failure_reason: "input_error", message: `this worker cannot give the job egress: ${noEgress}` } };
  if (req.spec.ports.length && !deps.relayBusybox) {
    const message = "this worker cannot serve the job's ports: it has no statically linked busybox to relay with (install busybox-static, or set GRIDX_RELAY_BUSYBOX)";
    return { ok: false, verdict: { exit_code: null, failure_reason: "input_error", message } };
  }
  let info: EngineInfo;
  try {
    info = await deps.info();
  } catch (err) {
    return { ok: false, verdict: failedStep(err, "internal", "could not ask the Docker engine which runtimes it has") };
  }
  const noRuntime = runtimeMissing(req.sandbox.runtime, runtimesOf(info.Runtimes)) ?? (req.gpuIndices.length ? gpuRuntimeProblem(req.sandbox.runtime, info.Runtimes) : null);
  if (noRuntime) return { ok: false, verdict: { exit_code: null, failure_reason: "input_error", message: noRuntime } };
  try {
    return { ok: true, jobUser: jobUserOnHost(info) };
  } catch (err) {
    return { ok: false, verdict: failedStep(err, "internal", "could not learn from the Docker engine how it maps the job user") };
  }
}
