import { createWriteStream, type WriteStream } from "node:fs";
import { copyFile, link, lstat, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { folderBytes } from "../folder-bytes.ts";
import { FrameDemuxer } from "../docker/frames.ts";
import type { DockerEngine } from "../docker/engine.ts";
import type { Logger } from "../logger.ts";
import type { InputCache } from "../transfer/input-cache.ts";
import { listFiles, uploadFiles, type ArtifactApi } from "../transfer/uploader.ts";
import type { HttpOptions } from "../transfer/http.ts";
import type { JobLimits, ResolvedCommits, WarmCache } from "../../../protocol/index.ts";
import type { RepoWorkspace } from "../repos/workspace.ts";
import { createJobFolder } from "./job-folder.ts";
import { handlerFor, type RunnerImages } from "./kinds.ts";
import { PrestartedSandboxes, takesPrestarted, type PrestartedSandbox } from "./prestart.ts";
import { TaskError, type JobRunner, type RunHooks, type RunOutcome, type RunRequest, type StopReason } from "./runner.ts";
import { containerOptions, LABELS, limitsUpdate } from "./sandbox.ts";

export interface DockerRunnerOptions {
  stateDir: string;
  agentName: string;
  images: RunnerImages;
  /** Seconds between SIGTERM and SIGKILL when a job is stopped. */
  stopGraceS: number;
  tmpfsMb: number;
  /** A job whose /work/output grows past this is stopped and fails output_too_large. */
  outputCapBytes: number;
  /** Images `command` jobs may use on this machine; empty trusts the control plane's list. */
  allowedImages: string[];
  /** Inputs in, outputs out; without it a job with inputs fails and outputs stay local. */
  transfers?: Transfers;
  /** Git cache and environment builds; without it repo jobs fail input_error. */
  repos?: RepoWorkspace;
  /** Python sandboxes kept started ahead of their jobs (see PrestartedSandboxes); none without it. */
  prestart?: number;
}

export interface Transfers {
  cache: InputCache;
  artifacts(jobId: string, attempt: number): ArtifactApi;
  http: HttpOptions;
  /** The job's log, kept as an artifact, is cut here. */
  logCapBytes: number;
}

/** The full job log is stored as an artifact under this name. */
export const JOB_LOG_ARTIFACT = ".gridx/job.log";

/** How often a paused output stream checks whether the congestion has cleared. */
const CONGESTION_POLL_MS = 50;

/** How often a running job's output folder is measured against its cap. */
const OUTPUT_CHECK_MS = 1000;

async function tryCatch<T>(p: Promise<T>): Promise<[unknown, undefined] | [null, T]> {
  try {
    return [null, await p];
  } catch (err) {
    return [err, undefined];
  }
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** What a job's container is called, prestarted or not. */
const containerName = (req: RunRequest) => `gridx-${req.jobId}-${req.attempt}`;

export class DockerRunner implements JobRunner {
  /** Python sandboxes started ahead of their jobs; null when `prestart` is 0. */
  readonly prestarted: PrestartedSandboxes | null;

  constructor(
    private readonly docker: DockerEngine,
    private readonly opts: DockerRunnerOptions,
    private readonly log: Logger,
  ) {
    this.prestarted = opts.prestart
      ? new PrestartedSandboxes(docker, { count: opts.prestart, jobsDir: this.jobsDir(), image: opts.images.python, tmpfsMb: opts.tmpfsMb, labels: this.agentLabels() }, log)
      : null;
  }

  private jobsDir() {
    return join(this.opts.stateDir, "jobs");
  }

  /** Every container of this agent carries these; `cleanupLeftovers` finds a crash's leftovers by them. */
  private agentLabels() {
    return { [LABELS.managed]: "true", [LABELS.agent]: this.opts.agentName };
  }

  start(): void {
    this.prestarted?.start();
  }

  async close(): Promise<void> {
    await this.prestarted?.close();
  }

  async run(req: RunRequest, hooks: RunHooks, stop: AbortSignal): Promise<RunOutcome> {
    const log = this.log.child({ job_id: req.jobId, attempt: req.attempt });
    // Taken, a sandbox is this run's to use and remove, as a container of its own would be.
    let sandbox = takesPrestarted(req) ? (this.prestarted?.take() ?? null) : null;
    const dir = sandbox?.folder.dir ?? join(this.jobsDir(), `${req.jobId}.${req.attempt}`);
    let container = sandbox?.container;
    let logFile: WriteStream | undefined;
    let logBytes = 0;
    const logCap = this.opts.transfers?.logCapBytes ?? 0;
    const tee = (chunk: Buffer) => {
      if (!logFile || logBytes >= logCap) return;
      logFile.write(chunk.subarray(0, logCap - logBytes));
      logBytes += chunk.length;
    };
    let resolved: ResolvedCommits | undefined;
    const outcome = (exit_code: number | null, failure_reason: RunOutcome["failure_reason"], message: string | null): RunOutcome => ({ exit_code, failure_reason, message, resolved });
    const env = { ...req.spec.env, GRIDX_JOB_ID: req.jobId, GRIDX_ATTEMPT: String(req.attempt) };
    try {
      const folder = sandbox?.folder ?? (await createJobFolder(dir));
      const [prepErr, prepared] = await tryCatch(
        handlerFor(req.spec.task).prepare(req.spec.task, {
          images: this.opts.images,
          inputDir: folder.input,
          codeDir: folder.code,
          env: sandbox ? env : null,
          repos: this.opts.repos ?? null,
          credentials: req.credentials,
          system: hooks.system,
          build: (text) => hooks.output("build", Buffer.from(text + "\n")),
          stop,
        }),
      );
      if (prepErr || !prepared) {
        if (stop.aborted) return outcome(null, "canceled_by_worker", `stopped while preparing (${String(stop.reason)})`);
        if (prepErr instanceof TaskError) return outcome(null, prepErr.reason, prepErr.message);
        return outcome(null, "input_error", `could not prepare the job's input: ${errorText(prepErr)}`);
      }
      const image = prepared.image;
      resolved = prepared.resolved;
      if (req.spec.task.kind === "command" && this.opts.allowedImages.length && !this.opts.allowedImages.includes(image)) {
        return outcome(null, "input_error", `image ${image} is not allowed on this worker (allowed: ${this.opts.allowedImages.join(", ")})`);
      }
      // A sandbox's image is here: it runs.
      const [imageErr] = sandbox ? [null] : await tryCatch(this.docker.inspectImage(image));
      if (imageErr) return outcome(null, "image_error", `image ${image} is not on this worker: ${errorText(imageErr)}`);
      const [inputErr] = await tryCatch(this.fetchInputs(req, folder.input, hooks));
      if (inputErr) return outcome(null, "input_error", errorText(inputErr));
      logFile = createWriteStream(join(dir, "job.log"));

      if (stop.aborted) return outcome(null, null, `stopped before start (${String(stop.reason)})`);
      if (sandbox && !(await this.go(sandbox, req.spec.limits, log))) {
        sandbox = null;
        container = undefined;
      }
      let stream: Readable;
      if (sandbox) {
        container = sandbox.container;
        stream = sandbox.output;
      } else {
        const options = containerOptions({
          name: containerName(req),
          image,
          argv: prepared.argv,
          env,
          limits: req.spec.limits,
          gpuIndices: req.gpuIndices,
          inputDir: folder.input,
          outputDir: folder.output,
          codeDir: prepared.code ? folder.code : null,
          tmpfsMb: this.opts.tmpfsMb,
          labels: { ...this.agentLabels(), [LABELS.jobId]: req.jobId, [LABELS.attempt]: String(req.attempt) },
        });
        const [createErr, created] = await tryCatch(this.docker.createContainer(options));
        if (createErr || !created) return outcome(null, "image_error", `could not create the container: ${errorText(createErr)}`);
        container = created;
        // Attach before start so no early output is lost; it waits, unread, until connected below.
        stream = await this.docker.attachContainer(container);
        if (stop.aborted) return outcome(null, null, `stopped before start (${String(stop.reason)})`);
        const [startErr] = await tryCatch(this.docker.startContainer(container));
        if (startErr) return outcome(null, "image_error", `could not start the container: ${errorText(startErr)}`);
      }
      hooks.started(resolved);
      log.info("container started", { image, prestarted: Boolean(sandbox) });
      if (sandbox) {
        // Named after its job, as a container of its own is, before any of its output is passed on.
        const [renameErr] = await tryCatch(this.docker.renameContainer(container, containerName(req)));
        if (renameErr) log.warn("could not name the prestarted container after its job", { err: renameErr });
      }
      const drained = connectOutput(stream, hooks, tee);

      const timeoutMs = req.spec.limits.timeout_s * 1000;
      let stopReason: StopReason | null = null;
      const c = container;
      const halt = (reason: StopReason) => {
        if (stopReason) return;
        stopReason = reason;
        hooks.system(`[gridx: stopping the job (${reason}); SIGTERM, then SIGKILL after ${this.opts.stopGraceS}s]`);
        this.docker.stopContainer(c, this.opts.stopGraceS).catch((err: unknown) => log.warn("stop failed", { err }));
      };
      const timer = setTimeout(() => halt("timeout"), timeoutMs);
      const overCap = async () => (await folderBytes(folder.output)) > this.opts.outputCapBytes;
      const outputWatch = setInterval(() => {
        void overCap().then((over) => over && halt("output_too_large"));
      }, OUTPUT_CHECK_MS);
      const onAbort = () => halt((stop.reason as StopReason) ?? "user");
      stop.addEventListener("abort", onAbort, { once: true });
      if (stop.aborted) onAbort();
      const [waitErr, exitCode] = await tryCatch(this.docker.waitContainer(container));
      clearTimeout(timer);
      clearInterval(outputWatch);
      stop.removeEventListener("abort", onAbort);
      await Promise.race([drained, new Promise((r) => setTimeout(r, 2000))]);
      if (waitErr || exitCode === undefined) return outcome(null, "internal", `lost track of the container: ${errorText(waitErr)}`);

      const info = await this.docker.inspectContainer(container);
      const reason = stopReason as StopReason | null;
      if (logFile) await new Promise<void>((r) => logFile!.end(r));
      if (reason !== "output_too_large" && !(await overCap())) {
        const [uploadErr] = await tryCatch(this.uploadOutputs(req, folder.output, join(dir, "job.log"), hooks));
        if (uploadErr) return outcome(exitCode, "internal", `the job ran, but its outputs could not be uploaded: ${errorText(uploadErr)}`);
      }
      if (reason === "output_too_large" || (!reason && (await overCap()))) {
        return outcome(exitCode, "output_too_large", `the job wrote more than ${this.opts.outputCapBytes} bytes to /work/output`);
      }
      if (reason === "timeout") return outcome(exitCode, "timeout", `the job ran longer than its timeout of ${req.spec.limits.timeout_s}s`);
      if (reason) return outcome(exitCode, "canceled_by_worker", `stopped: ${reason}`);
      if (info.State.OOMKilled) return outcome(exitCode, "oom", `the job used more than its memory limit of ${req.spec.limits.memory_mb} MiB`);
      return exitCode === 0 ? outcome(0, null, null) : outcome(exitCode, "exit_code", `the job exited with code ${exitCode}`);
    } catch (err) {
      log.error("run failed", { err });
      return outcome(null, "internal", `the agent failed to run the job: ${errorText(err)}`);
    } finally {
      logFile?.destroy();
      await sandbox?.close();
      if (container) await this.docker.removeContainer(container).catch((err: unknown) => log.warn("container removal failed", { err }));
      await rm(dir, { recursive: true, force: true }).catch((err: unknown) => log.warn("job folder removal failed", { err }));
    }
  }

  /**
   * Gives a taken sandbox the job's limits, then the go: the job's code runs from here. False
   * when it cannot take the job (it refused the limits, or died while waiting): it is removed
   * then, and its folder, with the job's files in, serves a container of the job's own.
   */
  private async go(sandbox: PrestartedSandbox, limits: JobLimits, log: Logger): Promise<boolean> {
    const update = limitsUpdate(sandbox.limits, limits);
    const [updateErr] = update ? await tryCatch(this.docker.updateContainer(sandbox.container, update)) : [null];
    if (updateErr) log.warn("the prestarted sandbox refused the job's limits; starting a container of the job's own", { err: updateErr });
    else if (await sandbox.go()) return true;
    else log.warn("the prestarted sandbox had died; starting a container of the job's own");
    await sandbox.close();
    await this.docker.removeContainer(sandbox.container).catch((err: unknown) => log.warn("container removal failed", { err }));
    return false;
  }

  /** Downloads (or finds cached) each input and links it into the job's input folder. */
  private async fetchInputs(req: RunRequest, inputDir: string, hooks: RunHooks): Promise<void> {
    if (req.inputs.length !== req.spec.inputs.length) {
      const missing = req.spec.inputs.filter((i) => !req.inputs.some((d) => d.path === i.path)).map((i) => i.dataset);
      throw new Error(`input dataset ${missing.join(", ")} does not exist`);
    }
    if (req.inputs.length && !this.opts.transfers) throw new Error("this agent cannot fetch inputs (no transfer settings)");
    for (const input of req.inputs) {
      const { path, hit } = await this.opts.transfers!.cache.get(input);
      const target = join(inputDir, input.path);
      await mkdir(dirname(target), { recursive: true, mode: 0o755 });
      // A hard link costs nothing and survives the cache evicting its own name.
      await link(path, target).catch(() => copyFile(path, target));
      hooks.system(`[gridx: input ${input.path} (dataset ${input.dataset}, ${input.size} bytes) ${hit ? "from the local cache" : "downloaded"}]`);
    }
  }

  /** Uploads every file the job left in /work/output, and its log, as the attempt's artifacts. */
  private async uploadOutputs(req: RunRequest, outputDir: string, logPath: string, hooks: RunHooks): Promise<void> {
    const t = this.opts.transfers;
    if (!t) return;
    const files = (await listFiles(outputDir)).filter((f) => !f.name.startsWith(".gridx/"));
    const logSize = (await lstat(logPath).catch(() => null))?.size ?? 0;
    files.push({ name: JOB_LOG_ARTIFACT, path: logPath, size: logSize });
    const done = await uploadFiles(files, t.artifacts(req.jobId, req.attempt), t.http);
    hooks.system(`[gridx: uploaded ${done.length - 1} output file(s) and the job log]`);
  }

  async cleanupLeftovers(): Promise<number> {
    const leftovers = await this.docker.listContainers(Object.entries(this.agentLabels()).map(([k, v]) => `${k}=${v}`));
    await Promise.all(leftovers.map((c) => this.docker.removeContainer(c.Id)));
    await rm(this.jobsDir(), { recursive: true, force: true });
    await mkdir(this.jobsDir(), { recursive: true });
    return leftovers.length;
  }

  async warm(): Promise<WarmCache> {
    return this.opts.repos ? this.opts.repos.warm() : { envs: [], repos: [] };
  }

  async missingImages(): Promise<string[]> {
    const missing: string[] = [];
    for (const image of Object.values(this.opts.images)) {
      const [err] = await tryCatch(this.docker.inspectImage(image));
      if (err) missing.push(image);
    }
    return missing;
  }
}

/**
 * Passes a container's output to the job's hooks and log as it comes; resolves once it ends.
 * Back-pressure: while the line to the coordinator is congested, stop reading. Docker's pipe
 * then fills and the job's own writes block, as they would on a slow terminal.
 */
function connectOutput(stream: Readable, hooks: RunHooks, tee: (chunk: Buffer) => void): Promise<void> {
  const relieve = () => {
    if (hooks.congested()) setTimeout(relieve, CONGESTION_POLL_MS);
    else stream.resume();
  };
  const demux = new FrameDemuxer((name, c) => {
    tee(c);
    hooks.output(name, c);
    if (hooks.congested() && !stream.isPaused()) {
      stream.pause();
      setTimeout(relieve, CONGESTION_POLL_MS);
    }
  });
  const drained = new Promise<void>((resolve) => {
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.on("error", () => resolve());
  });
  stream.on("data", (c: Buffer) => demux.write(c));
  return drained;
}
