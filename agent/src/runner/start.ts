import type { Readable } from "node:stream";
import type { JobLimits } from "../../../protocol/index.ts";
import type { DockerEngine } from "../docker/engine.ts";
import type { Logger } from "../logger.ts";
import type { EgressAttachment } from "../sandbox-net/egress.ts";
import type { JobFolder } from "./job-folder.ts";
import type { Prepared } from "./kinds.ts";
import { failedStep, type Verdict } from "./outcome.ts";
import type { PrestartedSandbox } from "./prestart.ts";
import type { RunHooks, RunRequest } from "./runner.ts";
import { containerOptions, LABELS, limitsUpdate } from "./sandbox.ts";
import type { UsageCgroups } from "./usage.ts";

/** What a run holds on the engine, for whoever removes it after the run, however it ended. */
export interface Held {
  /** A prestarted sandbox taken for this run, until it had its go or was given up. */
  sandbox: PrestartedSandbox | null;
  /** The job's container (the sandbox's, if it took the job). */
  container: string | undefined;
  /** The name of that container's parent cgroup (usage.ts), once it has one. */
  cgroup: string | undefined;
}

export interface StartDeps {
  docker: DockerEngine;
  tmpfsMb: number;
  /** Labels every container of this agent carries. */
  labels: Record<string, string>;
  /** The egress network this job's container joins; none for a job without egress. */
  network?: EgressAttachment;
  /**
   * Resolves when a slot is free for the job. Everything up to the engine's start (or the
   * sandbox's go) is done before it, so a prefetched job waits ready and starts the moment one frees.
   */
  slot(): Promise<void>;
  /** Where a container's usage is kept past its exit; without it, containers get the engine's default cgroup. */
  cgroups: UsageCgroups | null;
  /** The static busybox a job with ports gets for the tunnel's relays. */
  relayBusybox?: string;
}

/** `startedAt`: performance.now() as the job's code began (its container's start, or the sandbox's go). */
export type StartResult = { ok: true; container: string; output: Readable; startedAt: number } | { ok: false; verdict: Verdict };

/** What a job's container is called, prestarted or not. */
export const containerName = (req: Pick<RunRequest, "jobId" | "attempt">) => `gridx-${req.jobId}-${req.attempt}`;

/**
 * Starts the prepared job: in the taken sandbox if it takes the job's limits and is alive,
 * else in a container of its own. `env` is the job's environment; `held` records what there
 * is to remove as soon as there is.
 */
export async function startJob(deps: StartDeps, req: RunRequest, job: Prepared, folder: JobFolder, env: Record<string, string>, held: Held, hooks: RunHooks, stop: AbortSignal, log: Logger): Promise<StartResult> {
  const stopped = (): StartResult => ({ ok: false, verdict: { exit_code: null, failure_reason: null, message: `stopped before start (${String(stop.reason)})` } });
  const sandbox = held.sandbox;
  if (sandbox) {
    await deps.slot();
    if (stop.aborted) return stopped();
  }
  if (sandbox && !(await go(deps, sandbox, req.spec.limits, log))) {
    held.sandbox = null;
    held.container = undefined;
    held.cgroup = undefined;
  }
  let output: Readable;
  let startedAt = performance.now();
  if (held.sandbox) {
    output = held.sandbox.output;
  } else {
    const cgroup = containerName(req);
    const options = containerOptions({
      name: containerName(req),
      image: job.image,
      argv: job.argv,
      // The kind's own (a server's HOME) give way to the job's.
      env: { ...job.env, ...env },
      limits: req.spec.limits,
      gpuIndices: req.gpuIndices,
      inputDir: folder.input,
      outputDir: folder.output,
      codeDir: job.code ? folder.code : null,
      tmpfsMb: deps.tmpfsMb,
      labels: { ...deps.labels, [LABELS.jobId]: req.jobId, [LABELS.attempt]: String(req.attempt) },
      runtime: req.sandbox.runtime,
      network: deps.network,
      cgroupParent: deps.cgroups?.parent(cgroup),
      ...(req.spec.ports.length && deps.relayBusybox && { relayBusybox: deps.relayBusybox }),
    });
    try {
      held.container = await deps.docker.createContainer(options);
      held.cgroup = cgroup;
    } catch (err) {
      return { ok: false, verdict: failedStep(err, "image_error", "could not create the container") };
    }
    // Attach before start so no early output is lost; it waits, unread, until connected.
    output = await deps.docker.attachContainer(held.container);
    // Not again for a job whose sandbox died: it had its slot before the go.
    if (!sandbox) await deps.slot();
    if (stop.aborted) return stopped();
    try {
      await deps.docker.startContainer(held.container);
    } catch (err) {
      return { ok: false, verdict: failedStep(err, "image_error", "could not start the container") };
    }
    startedAt = performance.now();
  }
  const container = held.container!;
  hooks.started(job.resolved);
  log.info("container started", { image: job.image, prestarted: Boolean(held.sandbox) });
  if (held.sandbox) {
    // Named after its job, as a container of its own is, before any of its output is passed on.
    await deps.docker.renameContainer(container, containerName(req)).catch((err: unknown) => log.warn("could not name the prestarted container after its job", { err }));
  }
  return { ok: true, container, output, startedAt };
}

/**
 * Gives a taken sandbox the job's limits, then the go: the job's code runs from here. False
 * when it cannot take the job (it refused the limits, or died while waiting): it is removed
 * then, and its folder, with the job's files in, serves a container of the job's own.
 */
async function go({ docker, cgroups }: Pick<StartDeps, "docker" | "cgroups">, sandbox: PrestartedSandbox, limits: JobLimits, log: Logger): Promise<boolean> {
  const update = limitsUpdate(sandbox.limits, limits);
  const updated = update
    ? await docker.updateContainer(sandbox.container, update).then(
        () => true,
        (err: unknown) => (log.warn("the prestarted sandbox refused the job's limits; starting a container of the job's own", { err }), false),
      )
    : true;
  if (updated) {
    if (await sandbox.go()) return true;
    log.warn("the prestarted sandbox had died; starting a container of the job's own");
  }
  await sandbox.close();
  await docker.removeContainer(sandbox.container).catch((err: unknown) => log.warn("container removal failed", { err }));
  await cgroups?.remove(sandbox.cgroup);
  return false;
}
