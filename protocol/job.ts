import { z } from "zod";
import { ProjectName, RepoSource, SecretName } from "./repo.ts";
import { JobNetwork, Runtime } from "./sandbox.ts";
import { ObjectName } from "./transfer.ts";
import { PortNumber, TUNNEL_LIMITS } from "./tunnel.ts";
import { ArrayPlace, ArrayRequest, Dependency, DependencyRef, expandIndex, QueueTtl, RetryPolicy, WORKFLOW_LIMITS } from "./workflow.ts";

/** Lifecycle states of a job; the terminal ones never change again. */
export const JobStatus = z.enum(["queued", "assigned", "running", "completed", "failed", "canceled"]);
export type JobStatus = z.infer<typeof JobStatus>;
export const TERMINAL_STATUSES: readonly JobStatus[] = ["completed", "failed", "canceled"];

/** Why a job failed; `completed` always means exit code 0. */
export const FailureReason = z.enum([
  "exit_code",
  "timeout",
  "oom",
  "worker_lost",
  "canceled_by_worker",
  "image_error",
  "input_error",
  "output_too_large",
  "internal",
  /** A job it depends on ended so that its condition can never hold (failure_message names it). */
  "dependency_failed",
  /** It waited longer than its queue_ttl_s with no worker to run it. */
  "unschedulable",
]);
export type FailureReason = z.infer<typeof FailureReason>;

/** Every bound a job can set, with the default a user gets when it says nothing. */
export const JOB_LIMITS = {
  timeout_s: { min: 1, max: 7 * 24 * 3600, default: 3600 },
  memory_mb: { min: 16, max: 1024 * 1024, default: 512 },
  cpus: { min: 0.05, max: 512, default: 1 },
  pids: { min: 16, max: 65536, default: 256 },
  gpus: { min: 0, max: 64, default: 0 },
  priority: { min: -1000, max: 1000, default: 0 },
  max_retries: { min: 0, max: 20, default: 2 },
  script_bytes: { max: 256 * 1024 },
  args: { max: 256 },
  arg_chars: { max: 8192 },
  env_vars: { max: 64 },
  env_value_chars: { max: 8192 },
  labels: { max: 32 },
  inputs: { max: 32 },
  name_chars: { max: 200 },
  tags: { max: 16 },
  tag_chars: { max: 128 },
  secret_env: { max: 16 },
} as const;

const Name = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "lowercase letters, digits, '.', '_' or '-', 1 to 63 characters");
export const PoolName = Name;
export const LabelKey = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/, "letters, digits, '.', '_', '/' or '-', 1 to 63 characters");
export const LabelValue = z.string().max(128);
export const Labels = z
  .record(LabelKey, LabelValue)
  .refine((l) => Object.keys(l).length <= JOB_LIMITS.labels.max, `at most ${JOB_LIMITS.labels.max} labels`);
export type Labels = z.infer<typeof Labels>;

const Arg = z.string().max(JOB_LIMITS.arg_chars.max, `each argument is at most ${JOB_LIMITS.arg_chars.max} characters`);
const Args = z.array(Arg).max(JOB_LIMITS.args.max, `at most ${JOB_LIMITS.args.max} arguments`);
/** Bytes of a string as UTF-8, without TextEncoder (this module is runtime-neutral). */
export function utf8Length(s: string): number {
  let bytes = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return bytes;
}

export const PythonTask = z.object({
  script: z
    .string()
    .min(1, "the script is empty")
    .refine((s) => utf8Length(s) <= JOB_LIMITS.script_bytes.max, `the script is larger than ${JOB_LIMITS.script_bytes.max} bytes`),
  args: Args.default([]),
});
export type PythonTask = z.infer<typeof PythonTask>;

export const ImageRef = z.string().regex(/^[a-z0-9][a-z0-9._/:@-]{0,254}$/, "an image reference such as gridx/python:latest");
export const CommandTask = z.object({
  image: ImageRef,
  argv: z.array(Arg).min(1, "argv needs at least the program").max(JOB_LIMITS.args.max),
  /** A project secret holding `username:password` for the image's registry; the agent pulls with it. */
  registry_credentials: SecretName.optional(),
});
export type CommandTask = z.infer<typeof CommandTask>;

/**
 * A Jupyter server (Notebook, or JupyterLab where the image has it) on port 8888, behind
 * gridx's session auth instead of its token, with /work/output as its notebook folder.
 */
export const JupyterTask = z.object({
  /** An image that ships `jupyter`; the agent's gridx/jupyter runner image when absent. */
  image: ImageRef.optional(),
  /** Open JupyterLab (`jupyter lab`) rather than the classic Notebook; the image must have it. */
  lab: z.boolean().default(false),
});
export type JupyterTask = z.infer<typeof JupyterTask>;
/** The port a jupyter job serves on. */
export const JUPYTER_PORT = 8888;

/**
 * A port of the job's container reachable through the control plane while the job runs
 * (docs/sessions.md). `strip_prefix`: the server sees `/…` rather than its full
 * `/v1/jobs/:id/ports/:port/…` path (a server with a base URL setting, such as Jupyter, wants false).
 */
export const JobPort = z
  .object({
    port: PortNumber,
    protocol: z.literal("http").default("http"),
    strip_prefix: z.boolean().default(true),
    /** A browser or API session to the port ends after this long without traffic. */
    idle_timeout_s: z.number().int().min(TUNNEL_LIMITS.idle_timeout_s.min).max(TUNNEL_LIMITS.idle_timeout_s.max).default(TUNNEL_LIMITS.idle_timeout_s.default),
  })
  .strict();
export type JobPort = z.infer<typeof JobPort>;
const JobPorts = z
  .array(JobPort)
  .max(TUNNEL_LIMITS.ports_per_job, `at most ${TUNNEL_LIMITS.ports_per_job} ports`)
  .refine((list) => new Set(list.map((p) => p.port)).size === list.length, "a port is declared twice");

/** argv run in the environment image, with the code at /work/code as the working directory. */
const RepoCommand = z.array(Arg).min(1, "command needs at least the program").max(JOB_LIMITS.args.max);

const bounded = (key: "timeout_s" | "memory_mb" | "pids" | "gpus" | "priority" | "max_retries") =>
  z.number().int(`${key} must be a whole number`).min(JOB_LIMITS[key].min).max(JOB_LIMITS[key].max);
const Cpus = z.number().min(JOB_LIMITS.cpus.min).max(JOB_LIMITS.cpus.max);

export const JobLimits = z.object({
  timeout_s: bounded("timeout_s").default(JOB_LIMITS.timeout_s.default),
  memory_mb: bounded("memory_mb").default(JOB_LIMITS.memory_mb.default),
  cpus: Cpus.default(JOB_LIMITS.cpus.default),
  pids: bounded("pids").default(JOB_LIMITS.pids.default),
});
export type JobLimits = z.infer<typeof JobLimits>;

export const JobRequirements = z.object({
  gpus: bounded("gpus"),
  cpus: Cpus,
  memory_mb: bounded("memory_mb"),
  labels: Labels,
});
export type JobRequirements = z.infer<typeof JobRequirements>;

export const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, "an environment variable name");
const JobEnv = z
  .record(EnvName, z.string().max(JOB_LIMITS.env_value_chars.max))
  .refine((e) => Object.keys(e).length <= JOB_LIMITS.env_vars.max, `at most ${JOB_LIMITS.env_vars.max} variables`);

const JobTask = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("python"), python: PythonTask }),
  z.object({ kind: z.literal("command"), command: CommandTask }),
  z.object({ kind: z.literal("repo"), repo: RepoSource, command: RepoCommand }),
  z.object({ kind: z.literal("jupyter"), jupyter: JupyterTask }),
]);
export type JobTask = z.infer<typeof JobTask>;
export type JobKind = JobTask["kind"];

/** A path under /work/input: relative, no `..`, no empty parts. */
export const InputPath = z
  .string()
  .min(1)
  .max(255)
  .regex(/^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._\-/]+$/, "a relative path of letters, digits, '.', '_', '-' and '/', without '..'")
  .refine((p) => !p.split("/").includes("") && p !== "task.json" && p !== "main.py", "an empty path part, or a name gridx uses (task.json, main.py)");

const DatasetRef = z.string().min(1).max(64);
/** A file of another job of the project: its latest attempt's artifact of that name. */
const ArtifactRef = z.object({ job: z.string().regex(/^(j_[0-9a-z]{1,60}|\$[0-9]{1,4})$/, "a job id (j_…) or, in a batch, $N for its item N"), name: ObjectName }).strict();

/** A dataset (by id, or the name of one of the project's ready datasets) or a job's artifact, mounted at `path` under /work/input. */
export const JobInput = z.union([
  z.object({ dataset: DatasetRef, path: InputPath }).strict(),
  z.object({ artifact: ArtifactRef, path: InputPath }).strict(),
]);
export type JobInput = z.infer<typeof JobInput>;

/** What an input fetches, for messages: `dataset ds_…` or `artifact model.pt of j_…`. */
export const inputSource = (i: JobInput): string => ("dataset" in i ? `dataset ${i.dataset}` : `artifact ${i.artifact.name} of ${i.artifact.job}`);

/**
 * An input as a user writes it: in an array job, `{index}` in its dataset, path or artifact
 * name becomes each task's index. Checked as the first task (index 0) would have it.
 */
const templated = <S extends z.ZodType<string>>(rule: S) =>
  z
    .string()
    .max(512)
    .superRefine((v, ctx) => {
      const r = rule.safeParse(expandIndex(v, 0));
      if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ code: "custom", message: issue.message });
    });
const InputRequest = z.union([
  z.object({ dataset: templated(DatasetRef), path: templated(InputPath) }).strict(),
  z.object({ artifact: z.object({ job: ArtifactRef.shape.job, name: templated(ObjectName) }).strict(), path: templated(InputPath) }).strict(),
]);

/** `key=value`, the key as a label key is. */
export const JobTag = z
  .string()
  .max(JOB_LIMITS.tag_chars.max, `a tag is at most ${JOB_LIMITS.tag_chars.max} characters`)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}=[^\r\n]*$/, "key=value, the key of letters, digits, '.', '_', '/' or '-'");
const JobTags = z
  .array(JobTag)
  .max(JOB_LIMITS.tags.max, `at most ${JOB_LIMITS.tags.max} tags`)
  .refine((t) => new Set(t).size === t.length, "a tag is given twice");
/** Environment variables gridx sets itself (GRIDX_JOB_ID, GRIDX_ATTEMPT, ...): no secret may take one. */
export const RESERVED_ENV_PREFIX = "GRIDX_";
/** Environment variables a job takes from its project's secrets: `{"ENV_NAME": "secret-name"}`. */
const SecretEnv = z
  .record(EnvName, SecretName)
  .refine((e) => Object.keys(e).length <= JOB_LIMITS.secret_env.max, `at most ${JOB_LIMITS.secret_env.max} secrets`)
  .superRefine((e, ctx) => {
    for (const name of Object.keys(e).filter((n) => n.startsWith(RESERVED_ENV_PREFIX))) {
      ctx.addIssue({ code: "custom", path: [name], message: `${RESERVED_ENV_PREFIX}* variables are set by gridx; name the secret's variable otherwise` });
    }
  });

/** A worker's id, as GET /v1/workers lists it. */
export const WorkerId = z.string().regex(/^w_[0-9a-z]{1,60}$/, "a worker id (w_…), as GET /v1/workers lists it");

const JobCommon = z.object({
  project: ProjectName.default("default"),
  name: z.string().min(1, "name is empty").max(JOB_LIMITS.name_chars.max, `name is at most ${JOB_LIMITS.name_chars.max} characters`).optional(),
  tags: JobTags.default([]),
  secrets: SecretEnv.default({}),
  limits: JobLimits.strict().default(JobLimits.parse({})),
  requirements: JobRequirements.partial().strict().default({}),
  priority: bounded("priority").default(JOB_LIMITS.priority.default),
  max_retries: bounded("max_retries").default(JOB_LIMITS.max_retries.default),
  pool: PoolName.default("default"),
  /** The sandbox's runtime; the pool's default_runtime when absent. */
  runtime: Runtime.optional(),
  network: JobNetwork.default("none"),
  env: JobEnv.default({}),
  inputs: z
    .array(InputRequest)
    .max(JOB_LIMITS.inputs.max, `at most ${JOB_LIMITS.inputs.max} inputs`)
    .refine((list) => new Set(list.map((i) => i.path)).size === list.length, "two inputs share a path")
    .default([]),
  array: ArrayRequest.optional(),
  depends_on: z
    .array(Dependency)
    .max(WORKFLOW_LIMITS.depends_on.max, `at most ${WORKFLOW_LIMITS.depends_on.max} dependencies`)
    .refine((d) => new Set(d.map((x) => x.job)).size === d.length, "a job is named twice")
    .default([]),
  retry: RetryPolicy.optional(),
  /** Fails the job `unschedulable` when it has waited this long, ready to run, and no worker took it. */
  queue_ttl_s: QueueTtl.optional(),
  ports: JobPorts.default([]),
  /** Runs only on this worker of the pool (GET /v1/workers ids); any worker that fits when absent. */
  worker: WorkerId.optional(),
});

/** The body of `POST /v1/jobs` as a user writes it; parsing applies every default. */
export const JobRequest = z
  .discriminatedUnion("kind", [
    JobCommon.extend({ kind: z.literal("python"), python: PythonTask }).strict(),
    JobCommon.extend({ kind: z.literal("command"), command: CommandTask }).strict(),
    JobCommon.extend({ kind: z.literal("repo"), repo: RepoSource, command: RepoCommand }).strict(),
    JobCommon.extend({ kind: z.literal("jupyter"), jupyter: JupyterTask.default({ lab: false }) }).strict(),
  ])
  .superRefine((job, ctx) => {
    if (job.kind === "jupyter" && job.ports.some((p) => p.port === JUPYTER_PORT)) {
      ctx.addIssue({ code: "custom", path: ["ports"], message: `a jupyter job serves port ${JUPYTER_PORT} itself; declare only other ports` });
    }
    if (job.kind === "jupyter" && job.array) ctx.addIssue({ code: "custom", path: ["array"], message: "a jupyter job is one interactive session, not an array" });
    // One variable, two values: which one the job sees would be an accident of order.
    for (const name of Object.keys(job.secrets).filter((n) => Object.hasOwn(job.env, n))) {
      ctx.addIssue({ code: "custom", path: ["secrets", name], message: `${name} is also in env; a variable comes from env or from a secret, not both` });
    }
    if (job.array) return;
    job.inputs.forEach((input, i) => {
      const fields = "dataset" in input ? { dataset: input.dataset, path: input.path } : { "artifact.name": input.artifact.name, path: input.path };
      for (const [field, value] of Object.entries(fields)) {
        if (value.includes("{index}")) ctx.addIssue({ code: "custom", path: ["inputs", i, ...field.split(".")], message: "{index} is for array jobs: add array.count" });
      }
    });
  })
  .transform(({ limits, requirements, priority, max_retries, pool, runtime, network, env, inputs, project, name, tags, secrets, array, depends_on, retry, queue_ttl_s, ports, worker, ...task }): JobSpec => ({
    // A repo's credentials are its job's project's secrets unless it names another project (which submit refuses).
    task: task.kind === "repo" ? { ...task, repo: { ...task.repo, project: task.repo.project ?? project } } : task,
    project,
    name: name ?? null,
    tags,
    secrets,
    limits,
    // A worker reserves at least what the container may use, so no worker is over-committed:
    // a reservation below the limits is raised to them; one above them only picks a bigger machine.
    requirements: {
      gpus: requirements.gpus ?? JOB_LIMITS.gpus.default,
      cpus: Math.max(requirements.cpus ?? 0, limits.cpus),
      memory_mb: Math.max(requirements.memory_mb ?? 0, limits.memory_mb),
      labels: requirements.labels ?? {},
    },
    priority,
    max_retries,
    pool,
    // Submit fills in the pool's default; null only in specs stored before runtimes existed (runc).
    runtime: runtime ?? null,
    network,
    env,
    // Still templated for an array: submit makes each task's own.
    inputs: inputs as JobInput[],
    array: array ? { count: array.count, index: null } : null,
    depends_on,
    retry: retry ?? null,
    queue_ttl_s: queue_ttl_s ?? null,
    // Jupyter's own port comes first, unstripped: the server is told its base URL.
    ports: task.kind === "jupyter" ? [{ port: JUPYTER_PORT, protocol: "http", strip_prefix: false, idle_timeout_s: TUNNEL_LIMITS.idle_timeout_s.default }, ...ports] : ports,
    worker: worker ?? null,
  }));
export type JobRequest = z.input<typeof JobRequest>;

/** A job as stored and as sent to agents: every default applied. */
export const JobSpec = z.object({
  task: JobTask,
  // Specs stored before projects existed belong to `default`.
  project: ProjectName.default("default"),
  name: z.string().nullable().default(null),
  tags: z.array(z.string()).default([]),
  secrets: z.record(z.string(), z.string()).default({}),
  limits: JobLimits,
  requirements: JobRequirements,
  priority: z.number().int(),
  max_retries: z.number().int(),
  pool: PoolName,
  runtime: Runtime.nullable().default(null),
  network: JobNetwork.default("none"),
  env: z.record(z.string(), z.string()),
  inputs: z.array(JobInput).default([]),
  // Specs stored before workflows existed have none of these.
  array: ArrayPlace.nullable().default(null),
  depends_on: z.array(z.object({ job: DependencyRef, condition: Dependency.shape.condition })).default([]),
  retry: RetryPolicy.nullable().default(null),
  queue_ttl_s: z.number().int().nullable().default(null),
  // Specs stored before interactive sessions have none.
  ports: z.array(JobPort).default([]),
  // Specs stored before pinning have none: any worker.
  worker: z.string().nullable().default(null),
});
export type JobSpec = z.infer<typeof JobSpec>;
