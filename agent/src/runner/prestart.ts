import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { constants } from "node:fs";
import { open, rm, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { promisify } from "node:util";
import { JobLimits, type Runtime } from "../../../protocol/index.ts";
import { backoffDelay } from "../backoff.ts";
import type { DockerEngine } from "../docker/engine.ts";
import type { Logger } from "../logger.ts";
import { createJobFolder, type JobFolder } from "./job-folder.ts";
import type { RunRequest } from "./runner.ts";
import { containerOptions, LABELS } from "./sandbox.ts";
import type { UsageCgroups } from "./usage.ts";

/**
 * The go FIFO's name in a sandbox's output folder. Output, not input: the entrypoint can
 * remove it there once it has read the go (runner-images/python/entrypoint.py), so the job
 * never sees it, and no input path can collide with it.
 */
export const GO_FIFO = ".gridx-go";

/** A sandbox is made with a job's default limits, so most jobs need no update. */
const SANDBOX_LIMITS = JobLimits.parse({});

/** How often, and for how long, a new sandbox is checked for its entrypoint waiting on the FIFO. */
const READY_POLL_MS = 5;
const READY_TIMEOUT_MS = 10_000;

/** Pauses after a sandbox could not be prestarted (an out-of-date image, the engine away). */
const RETRY = { baseMs: 1000, maxMs: 60_000 };

const execFileAsync = promisify(execFile);

/**
 * Whether a job may run in a prestarted sandbox: one made from the python runner image with
 * no devices, so python jobs that asked for no GPUs. Not one with secrets: a sandbox takes its
 * environment from task.json in the job's folder, and secrets never go to disk. Nor one with
 * egress: a sandbox has no network.
 */
export function takesPrestarted(req: Pick<RunRequest, "spec" | "gpuIndices"> & { sandbox?: Pick<RunRequest["sandbox"], "network"> }): boolean {
  return req.spec.task.kind === "python" && req.gpuIndices.length === 0 && Object.keys(req.spec.secrets).length === 0 && req.sandbox?.network !== "egress" && !req.spec.ports?.length;
}

/** A started python-runner container whose entrypoint waits for a job. */
export interface PrestartedSandbox {
  container: string;
  /** Its parent cgroup's name (usage.ts): the container keeps it when renamed after its job. */
  cgroup: string;
  /** Fixed when it was made: it serves only jobs of this runtime. */
  runtime: Runtime;
  /** Bind-mounted exactly as a job's; the job's files go in before `go`. */
  folder: JobFolder;
  /** The limits it was made with. */
  limits: JobLimits;
  /** Its stdout and stderr, attached before it started and not read since. */
  output: Readable;
  /**
   * Lets the entrypoint run the job. False when nothing is waiting any more (the sandbox
   * died): the FIFO is then removed, leaving the folder fit for a container of the job's own.
   */
  go(): Promise<boolean>;
  /** Gives it up unused: closes the go line (the entrypoint then exits) and its output. Does nothing after `go`. */
  close(): Promise<void>;
}

export interface PrestartOptions {
  /** Sandboxes kept waiting. */
  count: number;
  /** Where their folders go: the agent's jobs folder, which `cleanupLeftovers` empties. */
  jobsDir: string;
  image: string;
  tmpfsMb: number;
  /** Labels every container of this agent carries, so a crash's leftovers are found. */
  labels: Record<string, string>;
  /** Where a sandbox's usage is kept past its exit, as a job container's is; none without it. */
  cgroups?: UsageCgroups | null;
}

/**
 * Keeps up to `count` python sandboxes created, attached and started ahead of their jobs, so
 * a python job skips the engine's create and start (most of its start latency). Each still
 * runs one job and is removed after it, by whoever took it; the pool only makes them.
 * A container's runtime is fixed at create, so they are made for the runtime the last python
 * job asked for (runc until one asks otherwise), and a job takes only one of its own runtime.
 *
 * @example
 * const pool = new PrestartedSandboxes(docker, { count: 1, jobsDir, image, tmpfsMb: 64, labels }, log);
 * pool.start(["runc", "gvisor"]);
 * const sandbox = pool.take("runc"); // null until one is ready
 */
export class PrestartedSandboxes {
  private readonly waiting: PrestartedSandbox[] = [];
  /** The runtime new sandboxes are made for. */
  private runtime: Runtime = "runc";
  /** The runtimes sandboxes can be made for here (see prestartableRuntimes); until `start`, none. */
  private prestartable: readonly Runtime[] = [];
  private filling: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  /** Ends a retry pause early, when closing. */
  private wake: (() => void) | null = null;

  constructor(
    private readonly docker: DockerEngine,
    private readonly opts: PrestartOptions,
    private readonly log: Logger,
  ) {}

  /** Sandboxes ready to be taken now. */
  get ready(): number {
    return this.waiting.length;
  }

  /** Begins filling, for runc; call after `cleanupLeftovers`, which would remove these too. */
  start(prestartable: readonly Runtime[]): void {
    this.prestartable = prestartable;
    this.fill();
  }

  /**
   * A waiting sandbox of `runtime`, from now on the caller's to use and remove, or null if
   * none is ready. Never waits. Later sandboxes are made for `runtime`, where they can be.
   * Its replacement starts once it has had its go (or been given up), and a job that found
   * none calls `fill` once it has started, so that making one never competes with the job's
   * own start for the engine.
   */
  take(runtime: Runtime): PrestartedSandbox | null {
    if (this.prestartable.includes(runtime)) this.runtime = runtime;
    const i = this.waiting.findIndex((s) => s.runtime === runtime);
    return i < 0 ? null : this.waiting.splice(i, 1)[0]!;
  }

  /** Stops filling and removes the waiting sandboxes; taken ones are their takers'. Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.wake?.();
      await this.filling;
      await Promise.all(this.waiting.splice(0).map((s) => this.discard(s)));
    })();
    return this.closing;
  }

  /**
   * Prestarts sandboxes one at a time until `count` of the current runtime wait, removing
   * waiting ones of another runtime to make room; one filler at most, so never more.
   */
  fill(): void {
    if (this.filling || this.closing || !this.prestartable.length) return;
    this.filling = (async () => {
      let failures = 0;
      while (!this.closing && this.waiting.filter((s) => s.runtime === this.runtime).length < this.opts.count) {
        try {
          if (this.waiting.length >= this.opts.count) {
            // Taken out before the first await, so it is never handed to a job while it goes.
            await this.discard(this.waiting.splice(this.waiting.findIndex((s) => s.runtime !== this.runtime), 1)[0]!);
            continue;
          }
          const sandbox = await this.prestart(this.runtime);
          if (this.closing) await this.discard(sandbox);
          else this.waiting.push(sandbox);
          failures = 0;
        } catch (err) {
          const retryMs = backoffDelay(failures++, RETRY);
          this.log.warn("could not prestart a sandbox; python jobs start cold meanwhile (is the runner image up to date? npm run images)", { err, runtime: this.runtime, retry_ms: retryMs });
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, retryMs);
            this.wake = () => (clearTimeout(timer), resolve());
          });
          this.wake = null;
        }
      }
    })().finally(() => (this.filling = null));
  }

  private async prestart(runtime: Runtime): Promise<PrestartedSandbox> {
    const id = randomUUID();
    const name = `gridx-prestarted-${id}`;
    const folder = await createJobFolder(join(this.opts.jobsDir, `prestarted-${id}`));
    const fifo = join(folder.output, GO_FIFO);
    let container: string | undefined;
    let output: Readable | undefined;
    try {
      await mkfifo(fifo);
      container = await this.docker.createContainer(
        containerOptions({
          name,
          image: this.opts.image,
          argv: null,
          env: { GRIDX_PRESTARTED: "1" },
          limits: SANDBOX_LIMITS,
          gpuIndices: [],
          inputDir: folder.input,
          outputDir: folder.output,
          codeDir: null,
          tmpfsMb: this.opts.tmpfsMb,
          labels: { ...this.opts.labels, [LABELS.prestarted]: "true" },
          runtime,
          cgroupParent: this.opts.cgroups?.parent(name),
        }),
      );
      output = await this.docker.attachContainer(container);
      // Unread while it waits; without a listener a dropped engine connection would crash the agent.
      output.on("error", () => undefined);
      await this.docker.startContainer(container);
      return waitingSandbox(container, name, runtime, folder, output, await openWhenListening(fifo), () => this.fill());
    } catch (err) {
      output?.destroy();
      if (container) await this.docker.removeContainer(container).catch(() => undefined);
      await this.opts.cgroups?.remove(name);
      await rm(folder.dir, { recursive: true, force: true });
      throw err;
    }
  }

  private async discard(sandbox: PrestartedSandbox): Promise<void> {
    await sandbox.close();
    await this.docker.removeContainer(sandbox.container).catch((err: unknown) => this.log.warn("prestarted container removal failed", { err }));
    await this.opts.cgroups?.remove(sandbox.cgroup);
    await rm(sandbox.folder.dir, { recursive: true, force: true });
  }
}

/** `settled` runs once, when the sandbox has had its go or been given up. */
function waitingSandbox(container: string, cgroup: string, runtime: Runtime, folder: JobFolder, output: Readable, line: FileHandle, settled: () => void): PrestartedSandbox {
  let done = false;
  const settle = async () => {
    done = true;
    await line.close();
    settled();
  };
  const close = async () => {
    if (done) return;
    output.destroy();
    await settle();
  };
  return {
    container,
    cgroup,
    runtime,
    folder,
    limits: SANDBOX_LIMITS,
    output,
    async go() {
      try {
        await line.write("go\n");
      } catch {
        // EPIPE: the reading end is gone with the entrypoint.
        await rm(join(folder.output, GO_FIFO), { force: true });
        await close();
        return false;
      }
      await settle();
      return true;
    },
    close,
  };
}

/**
 * The FIFO's writing end, opened once the entrypoint has the reading end open. Held from then
 * on, so that at go time a write that lands means a live sandbox and EPIPE a dead one; opening
 * only then could not tell a dead sandbox (ENXIO) from one whose entrypoint is still starting.
 */
async function openWhenListening(path: string): Promise<FileHandle> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      // Non-blocking, so that no reader yet is ENXIO rather than a wait.
      return await open(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENXIO") throw err;
    }
    if (Date.now() > deadline) throw new Error(`the sandbox's entrypoint did not wait on ${GO_FIFO} within ${READY_TIMEOUT_MS / 1000}s`);
    await new Promise((r) => setTimeout(r, READY_POLL_MS));
  }
}

/**
 * Node has no mkfifo(3); coreutils' mkfifo costs a process, paid only by the background
 * refill, never on a job's path (and asynchronously, so running jobs' streams keep flowing).
 */
async function mkfifo(path: string): Promise<void> {
  await execFileAsync("mkfifo", ["-m", "0644", path]);
}
