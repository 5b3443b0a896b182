import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { portPath, type AttemptUsage, type ResolvedCommits, type WarmCache } from "../../../protocol/index.ts";
import { prestartableRuntimes, RUNSC_ARGS, runscArgsMissing } from "../caps.ts";
import { DockerTimeoutError, type DockerEngine } from "../docker/engine.ts";
import type { EngineInfo } from "../docker/types.ts";
import type { Logger } from "../logger.ts";
import type { RepoWorkspace } from "../repos/workspace.ts";
import type { EgressAttachment, EgressNetworks } from "../sandbox-net/egress.ts";
import type { InputCache } from "../transfer/input-cache.ts";
import { CommandImages, DEFAULT_PULL_TIMEOUT_S, LoginPulls, loginPullsFile, loginSecrets } from "./command-image.ts";
import { collectOutputs, type Uploads } from "./finish.ts";
import { HostPaths, hostPathsHidden } from "./host-paths.ts";
import { createJobFolder, giveToJobUser, jobFolderAt } from "./job-folder.ts";
import { JobLogFile } from "./job-log.ts";
import type { RunnerImages } from "./kinds.ts";
import { maskedHooks, SecretMasker } from "./masking.ts";
import { classifyExit, errorText, failedStep, type Verdict } from "./outcome.ts";
import { preflight } from "./preflight.ts";
import { prepareJob } from "./prepare.ts";
import { PrestartedSandboxes, takesPrestarted } from "./prestart.ts";
import { TaskError, type JobRunner, type RunHooks, type RunOutcome, type RunRequest } from "./runner.ts";
import { LABELS, withinReservation } from "./sandbox.ts";
import { startJob, type Held } from "./start.ts";
import { supervise } from "./supervise.ts";
import { attemptUsage, type UsageCgroups } from "./usage.ts";

export interface DockerRunnerOptions {
  stateDir: string;
  agentName: string;
  /**
   * This agent installation's id (`agentInstance`). Its containers carry it, and cleanup
   * removes only containers and job folders that are its own, whatever other agents share
   * the Docker host or the state folder.
   */
  instance: string;
  images: RunnerImages;
  /** Seconds between SIGTERM and SIGKILL when a job is stopped. */
  stopGraceS: number;
  tmpfsMb: number;
  /** A job whose /work/output grows past this is stopped and fails output_too_large. */
  outputCapBytes: number;
  /** Image patterns (`*` = any characters) `command` jobs may use on this machine; empty trusts the control plane's list. */
  allowedImages: string[];
  /** One image pull may take this long (default DEFAULT_PULL_TIMEOUT_S). */
  pullTimeoutS?: number;
  /** Inputs in, outputs out; without it a job with inputs fails and outputs stay local. */
  transfers?: Transfers;
  /** Git cache and environment builds; without it repo jobs fail input_error. */
  repos?: RepoWorkspace;
  /** Python sandboxes kept started ahead of their jobs (see PrestartedSandboxes); none without it. */
  prestart?: number;
  /** The filtered networks of jobs with egress; without it such jobs fail input_error. */
  egress?: EgressNetworks;
  /** The record of repositories pulled with a login, shared with environment builds; default: one at `loginPullsFile(stateDir)`. */
  loginPulls?: LoginPulls;
  /** Where each container's CPU and memory use is kept past its exit (see trackUsage); without it, results carry no usage. */
  cgroups?: UsageCgroups | null;
  /** A statically linked busybox (findRelayBusybox) mounted into jobs with ports for the tunnel; without it such jobs fail input_error. */
  relayBusybox?: string;
}

export interface Transfers extends Uploads {
  cache: InputCache;
  /** The job's log, kept as an artifact, is cut here. */
  logCapBytes: number;
}

/**
 * Runs each job in a Docker container of its own, or in a python sandbox started before the
 * job came: check the machine can give it its sandbox (preflight.ts), prepare (prepare.ts),
 * start (start.ts), supervise to its exit (supervise.ts),
 * collect its outputs (finish.ts), and judge the outcome (outcome.ts). Whatever happens,
 * the run's container and folder are removed after it.
 */
export class DockerRunner implements JobRunner {
  /** Python sandboxes started ahead of their jobs; null when `prestart` is 0. */
  readonly prestarted: PrestartedSandboxes | null;
  /** What the engine says of itself, asked once: the job user's host ids (they differ under userns-remap), its runtimes. A failed ask is asked again. */
  private engineInfo: Promise<EngineInfo> | null = null;
  private readonly commandImages: CommandImages;

  constructor(
    private readonly docker: DockerEngine,
    private readonly opts: DockerRunnerOptions,
    private readonly log: Logger,
  ) {
    this.commandImages = new CommandImages(docker, {
      allowed: opts.allowedImages,
      pullTimeoutMs: (opts.pullTimeoutS ?? DEFAULT_PULL_TIMEOUT_S) * 1000,
      loginPulls: opts.loginPulls ?? new LoginPulls(loginPullsFile(opts.stateDir)),
    });
    this.prestarted = opts.prestart
      ? new PrestartedSandboxes(docker, { count: opts.prestart, jobsDir: this.jobsDir(), image: opts.images.python, tmpfsMb: opts.tmpfsMb, labels: this.agentLabels(), cgroups: opts.cgroups }, log)
      : null;
  }

  /** This installation's job folders: apart from any other agent's that shares the state folder. */
  jobsDir(): string {
    return join(this.opts.stateDir, "jobs", this.opts.instance);
  }

  /** Every container of this agent carries these; `cleanupLeftovers` finds a crash's leftovers by the instance. */
  private agentLabels() {
    return { [LABELS.managed]: "true", [LABELS.agent]: this.opts.agentName, [LABELS.instance]: this.opts.instance };
  }

  async start(): Promise<void> {
    const registered = await this.info().then(
      (info) => info.Runtimes,
      (err: unknown) => (this.log.warn("could not ask the Docker engine for its runtimes; only runc sandboxes are prestarted", { err }), undefined),
    );
    for (const arg of runscArgsMissing(registered)) this.log.warn(`runsc is registered without ${arg}: ${RUNSC_ARGS[arg]}`);
    this.prestarted?.start(prestartableRuntimes(registered));
  }

  async close(): Promise<void> {
    await this.prestarted?.close();
  }

  async run(asked: RunRequest, runHooks: RunHooks, stop: AbortSignal): Promise<RunOutcome> {
    const req: RunRequest = { ...asked, spec: { ...asked.spec, limits: withinReservation(asked.spec) } };
    const log = this.log.child({ job_id: req.jobId, attempt: req.attempt });
    // Repo and registry credentials are secrets too: a job, a failing fetch or a pull may print them.
    const masker = new SecretMasker([...Object.values(req.secretEnv ?? {}), req.credentials?.code, req.credentials?.env, ...loginSecrets(req.credentials?.registry)]);
    // Taken, a sandbox is this run's to use and remove, as a container of its own would be.
    const sandbox = takesPrestarted(req) ? (this.prestarted?.take(req.sandbox.runtime) ?? null) : null;
    const held: Held = { sandbox, container: sandbox?.container, cgroup: sandbox?.cgroup };
    const dir = sandbox?.folder.dir ?? join(this.jobsDir(), `${req.jobId}.${req.attempt}`);
    // Masked first, so that a secret holding a path is still matched whole.
    const paths = new HostPaths(this.opts.stateDir, jobFolderAt(dir));
    const hooks = maskedHooks(hostPathsHidden(runHooks, paths), masker);
    let jobLog: JobLogFile | undefined;
    let resolved: ResolvedCommits | undefined;
    let usage: AttemptUsage | undefined;
    const outcome = (v: Verdict): RunOutcome => ({ ...v, message: v.message && paths.text(masker.text(v.message)), resolved, ...(usage && { usage }) });
    // A prestarted sandbox gets it through task.json (kinds.ts), so it sees the same.
    const env = { ...req.spec.env, ...req.secretEnv, ...gridxEnv(req) };
    try {
      // Before anything is fetched or built for a job that could not run here anyway.
      const ready = await preflight({ egress: this.opts.egress, info: () => this.info(), relayBusybox: this.opts.relayBusybox }, req);
      if (!ready.ok) return outcome(ready.verdict);
      const { jobUser } = ready;
      // A sandbox's folder was made before the engine was asked; its entrypoint writes there only after the go.
      if (sandbox) await giveToJobUser(sandbox.folder.output, jobUser);
      const folder = sandbox?.folder ?? (await createJobFolder(dir, jobUser));
      const prepared = await prepareJob(
        { docker: this.docker, images: this.opts.images, commandImages: this.commandImages, repos: this.opts.repos ?? null, cache: this.opts.transfers?.cache ?? null },
        req,
        folder,
        sandbox ? env : null,
        hooks,
        stop,
      );
      resolved = prepared.ok ? prepared.job.resolved : prepared.resolved;
      if (!prepared.ok) return outcome(prepared.verdict);
      jobLog = new JobLogFile(join(dir, "job.log"), req.logMaxBytes ?? this.opts.transfers?.logCapBytes ?? 0, masker.stream(), log);
      if (stop.aborted) return outcome({ exit_code: null, failure_reason: null, message: `stopped before start (${String(stop.reason)})` });

      let network: EgressAttachment | undefined;
      if (req.sandbox.network === "egress") {
        try {
          // Just before the start, so the rules (and the host names in them) are the latest.
          network = await this.opts.egress!.attach(req.sandbox.egress_allow);
        } catch (err) {
          return outcome(err instanceof TaskError ? { exit_code: null, failure_reason: err.reason, message: err.message } : failedStep(err, "internal", "could not set up the egress network"));
        }
      }
      const slot = async () => await runHooks.slot?.();
      const started = await startJob({ docker: this.docker, tmpfsMb: this.opts.tmpfsMb, labels: this.agentLabels(), network, slot, cgroups: this.opts.cgroups ?? null, relayBusybox: this.opts.relayBusybox }, req, prepared.job, folder, env, held, hooks, stop, log);
      // A python job that found no sandbox of its runtime has them made for it from now on.
      if (takesPrestarted(req)) this.prestarted?.fill();
      if (!started.ok) return outcome(started.verdict);
      runHooks.reachable?.(started.container);
      const exited = await supervise(
        { docker: this.docker, stopGraceS: this.opts.stopGraceS, outputCapBytes: this.opts.outputCapBytes },
        started.container,
        started.output,
        folder.output,
        req.spec.limits,
        hooks,
        jobLog,
        stop,
        log,
      );
      // Outputs are collected and the container removed after this; the next job need not wait for that.
      runHooks.exited?.();
      if (!exited.ok) return outcome(exited.verdict);
      const counted = held.cgroup ? await this.opts.cgroups?.read(held.cgroup) : null;
      if (counted) usage = attemptUsage(counted, req.gpuIndices.length, exited.exitedAt - started.startedAt);
      else if (this.opts.cgroups) log.warn("the container's usage could not be read; the result goes without it");
      await jobLog.end();
      const collected = await collectOutputs(this.opts.transfers ?? null, req, folder.output, jobLog.path, this.opts.outputCapBytes, hooks);
      return outcome(
        classifyExit({
          exitCode: exited.exitCode,
          stopReason: exited.stopReason,
          oomKilled: exited.oomKilled,
          outputOver: collected.over ?? exited.outputOver,
          uploadError: collected.uploadError,
          limits: req.spec.limits,
        }),
      );
    } catch (err) {
      log.error("run failed", { err });
      return outcome({ exit_code: null, failure_reason: "internal", message: `the agent failed to run the job: ${errorText(err)}` });
    } finally {
      // A stream holds back bytes that may begin a secret until it sees what follows; nothing follows now.
      hooks.end();
      jobLog?.destroy();
      await this.release(held, dir, log);
    }
  }

  private info(): Promise<EngineInfo> {
    this.engineInfo ??= this.docker.info().catch((err: unknown) => {
      this.engineInfo = null;
      throw err;
    });
    return this.engineInfo;
  }

  /** Removes what a run held, each part whatever became of the others. */
  private async release(held: Held, dir: string, log: Logger): Promise<void> {
    await held.sandbox?.close().catch((err: unknown) => log.warn("the prestarted sandbox did not close cleanly", { err }));
    if (held.container) await this.docker.removeContainer(held.container).catch((err: unknown) => log.warn("container removal failed", { err }));
    if (held.cgroup) await this.opts.cgroups?.remove(held.cgroup);
    await rm(dir, { recursive: true, force: true }).catch((err: unknown) => log.warn("job folder removal failed", { err }));
  }

  /** Removes this installation's containers and job folders left by an earlier, crashed run of it; never another agent's. */
  async cleanupLeftovers(): Promise<number> {
    const leftovers = await this.docker.listContainers([`${LABELS.instance}=${this.opts.instance}`]);
    await Promise.all(leftovers.map((c) => this.docker.removeContainer(c.Id)));
    await this.opts.cgroups?.removeAll();
    // Only once no container of this instance is left on them.
    await this.opts.egress?.cleanupLeftovers();
    await rm(this.jobsDir(), { recursive: true, force: true });
    await mkdir(this.jobsDir(), { recursive: true });
    return leftovers.length;
  }

  async warm(): Promise<WarmCache> {
    return this.opts.repos ? this.opts.repos.warm() : { envs: [], repos: [] };
  }

  /** The runner images not on this machine; an engine that does not answer is not taken to mean missing. */
  async missingImages(): Promise<string[]> {
    const missing: string[] = [];
    for (const image of Object.values(this.opts.images).filter((i) => i !== undefined)) {
      await this.docker.inspectImage(image).catch((err: unknown) => {
        if (err instanceof DockerTimeoutError) throw err;
        missing.push(image);
      });
    }
    return missing;
  }
}

/**
 * What gridx tells a job of itself; after its own env and secrets, so that neither can hide
 * it. An array task also learns its index (0-based) and the array's size; a job with ports,
 * where each is served (GRIDX_PORT_<port>_PATH, its public path); a job pinned to its worker
 * (a broadcast's), that worker's id.
 *
 * @example
 * gridxEnv({ jobId: "j_1", attempt: 2, spec: { array: { count: 4, index: 3 } } });
 * // { GRIDX_JOB_ID: "j_1", GRIDX_ATTEMPT: "2", GRIDX_ARRAY_INDEX: "3", GRIDX_ARRAY_COUNT: "4" }
 */
export function gridxEnv(req: Pick<RunRequest, "jobId" | "attempt"> & { spec: Pick<RunRequest["spec"], "array"> & Partial<Pick<RunRequest["spec"], "ports" | "worker">> }): Record<string, string> {
  const place = req.spec.array;
  const task: Record<string, string> = place && place.index !== null ? { GRIDX_ARRAY_INDEX: String(place.index), GRIDX_ARRAY_COUNT: String(place.count) } : {};
  const ports = Object.fromEntries((req.spec.ports ?? []).map((p) => [`GRIDX_PORT_${p.port}_PATH`, portPath(req.jobId, p.port)]));
  const pinned: Record<string, string> = req.spec.worker ? { GRIDX_WORKER_ID: req.spec.worker } : {};
  return { GRIDX_JOB_ID: req.jobId, GRIDX_ATTEMPT: String(req.attempt), ...task, ...ports, ...pinned };
}
