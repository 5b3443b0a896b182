import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { JUPYTER_PORT, portPath, type AttemptSandbox, type JobTask, type RepoCredentials, type ResolvedCommits } from "../../../protocol/index.ts";
import type { RepoWorkspace } from "../repos/workspace.ts";
import type { CommandImages } from "./command-image.ts";
import { TaskError } from "./runner.ts";

/** What a kind may use to get its job ready. */
export interface PrepareContext {
  jobId: string;
  images: RunnerImages;
  /** Host side of /work/input. */
  inputDir: string;
  /** Host side of /work/code (mounted read-only, the working directory) for kinds that fill it. */
  codeDir: string;
  /**
   * The job's environment, for a container started before the job was known (a prestarted
   * sandbox): its entrypoint applies it. Null when the container is made with it.
   */
  env: Record<string, string> | null;
  repos: RepoWorkspace | null;
  /** Command jobs' images: allowed here, pulled, pinned. */
  commandImages: CommandImages;
  credentials: RepoCredentials | undefined;
  /** The attempt's sandbox: what a repo job's environment build may reach. */
  sandbox: AttemptSandbox;
  system(text: string): void;
  build(text: string): void;
  stop: AbortSignal;
}

/** How a job's container is made: its image, its argv, and whether it gets the code folder. */
export interface Prepared {
  image: string;
  /** argv replacing the image's entrypoint, or null to run the image as built. */
  argv: string[] | null;
  /** Mount `codeDir` read-only at /work/code and run there. */
  code: boolean;
  /** Set in the container's environment over the job's own (a server's writable HOME). */
  env?: Record<string, string>;
  resolved?: ResolvedCommits;
}

/** What the agent needs to know to run one kind of job. */
export interface KindHandler<T extends JobTask> {
  /** Writes the job's files and finds its image; a TaskError says which failure it is. */
  prepare(task: T, ctx: PrepareContext): Promise<Prepared>;
}

export interface RunnerImages {
  python: string;
  /** The image a jupyter job runs when it names none (GRIDX_JUPYTER_IMAGE); absent, such a job fails image_error. */
  jupyter?: string;
}

type Registry = { [K in JobTask["kind"]]: KindHandler<Extract<JobTask, { kind: K }>> };

async function writeReadable(path: string, content: string) {
  await writeFile(path, content);
  await chmod(path, 0o644);
}

/** Every job kind the agent runs. A new kind is one entry here plus its schema in protocol/. */
export const KINDS: Registry = {
  python: {
    async prepare(task, ctx) {
      await writeReadable(join(ctx.inputDir, "main.py"), task.python.script);
      await writeReadable(join(ctx.inputDir, "task.json"), JSON.stringify({ script: "main.py", args: task.python.args, ...(ctx.env && { env: ctx.env }) }));
      return { image: ctx.images.python, argv: null, code: false };
    },
  },
  command: {
    async prepare(task, ctx) {
      const secret = task.command.registry_credentials;
      const value = ctx.credentials?.registry;
      if (secret && value === undefined) {
        throw new TaskError("input_error", `command.registry_credentials: secret ${secret} could not be had: it was deleted from the project since the job was submitted, or the control plane could not open it`);
      }
      const login = secret && value !== undefined ? { secret, value } : undefined;
      const { image, resolved } = await ctx.commandImages.ensure(task.command.image, login, ctx, ctx.stop);
      return { image, argv: task.command.argv, code: false, resolved };
    },
  },
  jupyter: {
    async prepare(task, ctx) {
      // The root is read-only; Jupyter writes its config and runtime files under HOME, and /tmp is the container's tmpfs.
      const image = task.jupyter.image ?? ctx.images.jupyter;
      if (!image) throw new TaskError("image_error", "this worker has no Jupyter image (GRIDX_JUPYTER_IMAGE); name one in jupyter.image");
      return { image, argv: jupyterArgv(ctx.jobId, task.jupyter.lab), code: false, env: { HOME: "/tmp" } };
    },
  },
  repo: {
    async prepare(task, ctx) {
      if (!ctx.repos) throw new TaskError("input_error", "this worker does not run repo jobs");
      const { image, resolved } = await ctx.repos.prepare(task, ctx.credentials, ctx.sandbox, ctx.codeDir, ctx, ctx.stop);
      return { image, argv: task.command, code: true, resolved };
    },
  },
};

/**
 * The Jupyter server's argv: on loopback only (the tunnel reaches it there), served under
 * the port's public path (its strip_prefix is false), with no token or password (the control
 * plane has authenticated whoever gets through) and no origin or XSRF checks, which the
 * public path's own origin would fail. Notebooks live in /work/output, so they are kept.
 */
export function jupyterArgv(jobId: string, lab: boolean): string[] {
  const app = lab ? "ServerApp" : "NotebookApp";
  return [
    "jupyter",
    lab ? "lab" : "notebook",
    "--ip=127.0.0.1",
    `--port=${JUPYTER_PORT}`,
    "--no-browser",
    `--${app}.token=`,
    `--${app}.password=`,
    `--${app}.base_url=${portPath(jobId, JUPYTER_PORT)}`,
    `--${app}.notebook_dir=/work/output`,
    `--${app}.allow_origin=*`,
    `--${app}.disable_check_xsrf=True`,
  ];
}

export function handlerFor(task: JobTask): KindHandler<JobTask> {
  return KINDS[task.kind] as KindHandler<JobTask>;
}
