import type { ParseArgsOptionsConfig } from "node:util";
// Types only: the server checks every bound (and the CLI starts without loading zod).
import type { JobRequest } from "../../protocol/index.ts";
import { decimal, integer, memoryMb, pairs, seconds } from "./args.ts";
import { UsageError } from "./errors.ts";
import { artifactInput, WORKFLOW_FLAGS, WORKFLOW_FLAGS_HELP, workflowFields } from "./workflow-request.ts";

/** The flags `submit` and `run` share, besides their own. */
export const JOB_FLAGS = {
  image: { type: "string" },
  "code-repo": { type: "string" },
  "code-commit": { type: "string" },
  "env-repo": { type: "string" },
  "env-commit": { type: "string" },
  dockerfile: { type: "string" },
  project: { type: "string" },
  "code-credentials": { type: "string" },
  "env-credentials": { type: "string" },
  pool: { type: "string" },
  worker: { type: "string" },
  runtime: { type: "string" },
  network: { type: "string" },
  "registry-credentials": { type: "string" },
  cpus: { type: "string" },
  memory: { type: "string" },
  gpus: { type: "string" },
  pids: { type: "string" },
  timeout: { type: "string" },
  priority: { type: "string" },
  retries: { type: "string" },
  label: { type: "string", multiple: true },
  env: { type: "string", multiple: true, short: "e" },
  input: { type: "string", multiple: true },
  "idempotency-key": { type: "string" },
  name: { type: "string" },
  tag: { type: "string", multiple: true },
  secret: { type: "string", multiple: true },
  ...WORKFLOW_FLAGS,
} as const satisfies ParseArgsOptionsConfig;

export const JOB_KINDS_HELP = `Job kinds:
  FILE [ARGS...]               a Python script (FILE, or - for stdin) run with ARGS
  --image IMG -- ARGV...       a command (argv, never a shell string) in an allowed image;
                               --registry-credentials NAME names a project secret holding
                               username:password to pull it with
  --code-repo URL --code-commit REF --env-repo URL --env-commit REF [--dockerfile PATH] -- ARGV...
                               a versioned repo: the code at REF (read-only at /work/code, the
                               working directory), run with ARGV in the image built from the
                               environment repo's Dockerfile (default Dockerfile) at its REF.
                               Private repos: --code-credentials / --env-credentials NAME name a
                               secret of the job's project (--project)
gridx's options come before FILE or --; everything after belongs to the job.`;

export const JOB_FLAGS_HELP = `  --project P                  the job's project (default: GRIDX_PROJECT, else the saved
                               \`gridx config set project P\`, else default)
  --name TEXT                  a name for the job, up to 200 characters (gridx list --name finds it)
  --tag KEY=VALUE              a tag, up to 16 (repeat; gridx list --tag finds it)
  --pool NAME                  the pool to run in (default: default)
  --worker ID                  only on this worker of the pool (an id from gridx workers)
  --runtime runc|gvisor        the sandbox's runtime (default: the pool's default_runtime)
  --network none|egress        egress reaches the outside world through the agent's filtered
                               network, where the pool allows it (default: none)
  --cpus N                     CPU limit, also reserved (default 1; 0.5 works)
  --memory SIZE                memory limit, also reserved: 512m, 2g (default 512m)
  --gpus N                     GPUs to reserve (default 0)
  --pids N                     process limit (default 256)
  --timeout DUR                90, 90s, 10m, 1h30m, 2d (default 1h)
  --priority N                 -1000 to 1000, higher first (default 0)
  --label KEY=VALUE            only on workers with this label (repeat)
  -e, --env KEY[=VALUE]        environment variable; KEY alone passes gridx's own (repeat)
  --secret ENV=NAME            the project's secret NAME as the variable ENV, masked as *** in
                               the job's output (repeat)
  --input DATASET:PATH         mount a dataset read-only at /work/input/PATH (repeat)
  --idempotency-key KEY        resubmitting with the same key gives the same job
${WORKFLOW_FLAGS_HELP}`;

export type JobBody = JobRequest;
type RepoSource = Extract<JobRequest, { kind: "repo" }>["repo"];

/** The job flags as `parseArgs` gives them. */
export type JobFlags = { [K in keyof typeof JOB_FLAGS]?: (typeof JOB_FLAGS)[K] extends { multiple: true } ? string[] : string };

export interface BuildContext {
  /** Reads a script file (or stdin for `-`). */
  readScript: (path: string) => string;
  /** gridx's own environment, for `--env NAME`. */
  env: Record<string, string | undefined>;
}

/**
 * The body of `POST /v1/jobs` for the command line of `gridx submit` / `gridx run`: a Python
 * script, an `--image` command, or a repo job, with the limits, requirements and options the
 * flags set. Defaults are left to the server.
 *
 * @example
 * buildJobRequest({ pool: "gpu", gpus: "1" }, ["train.py", "--lr", "0.1"], ctx)
 * // { kind: "python", python: { script: "...", args: ["--lr", "0.1"] }, pool: "gpu", requirements: { gpus: 1 } }
 */
export function buildJobRequest(flags: JobFlags, program: string[], ctx: BuildContext): JobBody {
  const repoFlags = (["code-repo", "code-commit", "env-repo", "env-commit", "dockerfile", "code-credentials", "env-credentials"] as const).filter((f) => flags[f] !== undefined);
  if (flags["registry-credentials"] !== undefined && flags.image === undefined) throw new UsageError("--registry-credentials goes with --image: it is the login for pulling that image");
  if (flags.image !== undefined && repoFlags.length) throw new UsageError(`--image and --${repoFlags[0]} do not go together: a job is a command in an image or a repo job`);

  const common = commonFields(flags, ctx);
  if (repoFlags.length) {
    const missing = (["code-repo", "code-commit", "env-repo", "env-commit"] as const).filter((f) => !flags[f]);
    if (missing.length) throw new UsageError(`a repo job needs --code-repo URL --code-commit REF --env-repo URL --env-commit REF (missing: ${missing.map((f) => `--${f}`).join(", ")})`);
    if (!program.length) throw new UsageError("a repo job needs its command after --, such as -- python train.py");
    const repo: RepoSource = { code_repo_url: flags["code-repo"]!, code_commit_id: flags["code-commit"]!, env_repo_url: flags["env-repo"]!, env_commit_id: flags["env-commit"]! };
    if (flags.dockerfile !== undefined) repo.dockerfile_path = flags.dockerfile;
    if (flags["code-credentials"] !== undefined) repo.code_credentials = flags["code-credentials"];
    if (flags["env-credentials"] !== undefined) repo.env_credentials = flags["env-credentials"];
    return { kind: "repo", repo, command: program, ...common };
  }
  if (flags.image !== undefined) {
    if (!program.length) throw new UsageError(`--image needs the command to run after --, such as --image ${flags.image} -- python3 -c 'print(1)'`);
    const registry = flags["registry-credentials"];
    return { kind: "command", command: { image: flags.image, argv: program, ...(registry !== undefined ? { registry_credentials: registry } : {}) }, ...common };
  }
  const [file, ...args] = program;
  if (!file) throw new UsageError("give a Python script (gridx submit job.py), a command (--image IMG -- ARGV...) or a repo job (--code-repo ...)");
  return { kind: "python", python: { script: ctx.readScript(file), args }, ...common };
}

/** The fields every kind of job shares (limits, requirements, pool, inputs, ...), from their flags. */
export function commonFields(flags: JobFlags, ctx: BuildContext) {
  const limits: { timeout_s?: number; memory_mb?: number; cpus?: number; pids?: number } = {};
  if (flags.timeout !== undefined) limits.timeout_s = seconds("--timeout", flags.timeout);
  if (flags.memory !== undefined) limits.memory_mb = memoryMb("--memory", flags.memory);
  if (flags.cpus !== undefined) limits.cpus = decimal("--cpus", flags.cpus);
  if (flags.pids !== undefined) limits.pids = integer("--pids", flags.pids);
  const requirements: { gpus?: number; labels?: Record<string, string> } = {};
  if (flags.gpus !== undefined) requirements.gpus = integer("--gpus", flags.gpus);
  if (flags.label?.length) requirements.labels = pairs("--label", flags.label);
  const inputs: NonNullable<JobRequest["inputs"]> = (flags.input ?? []).map((raw) => {
    const colon = raw.indexOf(":");
    if (colon <= 0 || colon === raw.length - 1) throw new UsageError(`--input takes DATASET:PATH, such as ds_01abc:data/train.bin, not "${raw}"`);
    return { dataset: raw.slice(0, colon), path: raw.slice(colon + 1) };
  });
  inputs.push(...(flags.artifact ?? []).map(artifactInput));
  const tags = (flags.tag ?? []).map((raw) => {
    if (raw.indexOf("=") <= 0) throw new UsageError(`--tag takes KEY=VALUE, such as sweep=lr or owner=ada, not "${raw}"`);
    return raw;
  });
  return {
    ...(flags.project !== undefined ? { project: flags.project } : {}),
    ...(flags.name !== undefined ? { name: flags.name } : {}),
    ...(tags.length ? { tags } : {}),
    ...(Object.keys(limits).length ? { limits } : {}),
    ...(Object.keys(requirements).length ? { requirements } : {}),
    ...(flags.pool !== undefined ? { pool: flags.pool } : {}),
    ...(flags.worker !== undefined ? { worker: flags.worker } : {}),
    ...(flags.runtime !== undefined ? { runtime: oneOf("--runtime", flags.runtime, ["runc", "gvisor"]) } : {}),
    ...(flags.network !== undefined ? { network: oneOf("--network", flags.network, ["none", "egress"]) } : {}),
    ...(flags.priority !== undefined ? { priority: integer("--priority", flags.priority) } : {}),
    ...(flags.env?.length ? { env: pairs("--env", flags.env, (name) => ctx.env[name]) } : {}),
    ...(flags.secret?.length ? { secrets: pairs("--secret", flags.secret) } : {}),
    ...(inputs.length ? { inputs } : {}),
    ...workflowFields(flags),
  };
}

/** A flag that takes one of a few words; anything else is a usage error listing them. */
function oneOf<const W extends string>(flag: string, value: string, words: readonly W[]): W {
  if (!(words as readonly string[]).includes(value)) throw new UsageError(`${flag} takes ${words.join(" or ")}, not "${value}"`);
  return value as W;
}
