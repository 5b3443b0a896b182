import { readFileSync } from "node:fs";
import type { JobRequest } from "../../../protocol/index.ts";
import type { ApiClient } from "../api.ts";
import { integer } from "../args.ts";
import { command, type Context } from "../cli.ts";
import { UsageError } from "../errors.ts";
import { EXIT, jobExitCode } from "../exit-codes.ts";
import { ago, bytes, duration, fromNow, keyValues, labels, mib, shellWord, table } from "../format.ts";
import { buildJobRequest, JOB_FLAGS, JOB_FLAGS_HELP, JOB_KINDS_HELP, type JobBody, type JobFlags } from "../job-request.ts";
import { waitForJobEnd } from "../events.ts";
import { followLogs, LogPrinter, readLogs, type JobEnd } from "../logs.ts";
import { attemptsTable, attemptText, relativesText, usageText } from "../workflow-view.ts";

const notFound = "list jobs with `gridx list`";

type JobDetail = Awaited<ReturnType<typeof getJob>>;
type JobSummary = Pick<JobDetail, "id" | "status" | "kind" | "project" | "name" | "submitted_by" | "pool" | "exit_code" | "failure_reason" | "created_at" | "started_at" | "finished_at">;

function getJob(api: ApiClient, id: string) {
  return api.json(api.rpc.v1.jobs[":id"].$get({ param: { id } }), { notFound });
}

/** A script file, or stdin for `-`. */
export function readScript(path: string): string {
  try {
    return readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read the script ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

async function submitJob(ctx: Context, flags: JobFlags, program: string[]) {
  const project = ctx.project(flags.project);
  const body: JobBody = buildJobRequest({ ...flags, ...(project ? { project } : {}) }, program, { readScript, env: ctx.io.env });
  const api = ctx.api();
  const key = flags["idempotency-key"];
  // A repo job's body is checked by the server; the protocol's request type gains the kind with it.
  return api.json(api.rpc.v1.jobs.$post({ json: body as JobRequest, header: key ? { "Idempotency-Key": key } : {} }));
}

/** Where a job went, for the notes: `pool gpu (project lab)`. */
const where = (j: Pick<JobSummary, "pool" | "project">) => `pool ${j.pool} (project ${j.project})`;

/** The status of a job as one word, with the reason it failed. */
const statusText = (j: Pick<JobSummary, "status" | "failure_reason" | "exit_code">) =>
  j.status === "failed" ? `failed (${j.failure_reason === "exit_code" ? `exit ${j.exit_code}` : j.failure_reason})` : j.status;

const runTime = (j: Pick<JobSummary, "started_at" | "finished_at">, now = Date.now()) =>
  j.started_at ? duration((j.finished_at ? Date.parse(j.finished_at) : now) - Date.parse(j.started_at)) : "-";

/** Waits for a job to end (the events stream pushes it), then reads it whole. */
async function waitForEnd(api: ApiClient, id: string): Promise<JobDetail> {
  await waitForJobEnd(api, id, async () => (await getJob(api, id)).status);
  return getJob(api, id);
}

/** What `run` says when the job ended: nothing when it completed, else how it did not. */
function endNote(job: JobEnd & Pick<JobDetail, "id"> & Partial<Pick<JobDetail, "failure_message">>): string | undefined {
  if (job.status === "completed") return undefined;
  if (job.status === "canceled") return `[gridx: job ${job.id} was canceled]`;
  return `[gridx: job ${job.id} failed: ${job.failure_reason === "exit_code" ? `exit code ${job.exit_code}` : `${job.failure_reason}${job.failure_message ? ` (${job.failure_message})` : ""}`}]`;
}

const SUBMIT_EXTRA = { wait: { type: "boolean", short: "w" } } as const;

export const submit = command({
  name: "submit",
  group: "Jobs",
  summary: "submit a job; print its id",
  usage: ["submit [options] FILE [ARGS...]", "submit [options] --image IMG -- ARGV...", "submit [options] --code-repo URL --code-commit REF [...] -- ARGV..."],
  options: { ...JOB_FLAGS, ...SUBMIT_EXTRA },
  program: true,
  jobExitCodes: true,
  optionsHelp: `${JOB_FLAGS_HELP}
  -w, --wait                   wait for the job to end and exit with its exit code (no logs)`,
  notes: `${JOB_KINDS_HELP}
Prints the job's id on stdout, or with --array the array's id (with --json, the whole job: task 0).`,
  examples: [
    "gridx submit job.py --epochs 3              # the flags after the script are the script's",
    "gridx submit --image gridx/python:latest -- python3 -c 'print(6*7)'",
    "gridx submit --pool gpu --gpus 1 --memory 8g --timeout 2h train.py",
    "gridx submit --code-repo https://git.example.com/lab/model.git --code-commit 4f2a9c1 \\\n    --env-repo https://git.example.com/lab/env.git --env-commit v3 --dockerfile Dockerfile -- python train.py",
    "ID=$(gridx submit job.py) && gridx logs $ID -f",
    "gridx submit --json job.py | jq -r .id",
    "A=$(gridx submit --array 100 shard.py) && gridx submit --after $A merge.py   # merge runs once all 100 completed",
    "gridx submit --retry-on oom,worker_lost --retries 3 --queue-ttl 1h train.py",
  ],
  async run({ values, positionals }, ctx) {
    if (values.wait && values.array !== undefined) throw new UsageError("--wait waits for one job, and --array makes many: follow the array with gridx array ID");
    return reportSubmitted(ctx, await submitJob(ctx, values, positionals), values.wait === true);
  },
});

/**
 * Prints a new job's id (an array's id, for its task 0) and how to follow it; with `wait`,
 * waits for it to end and exits with its exit code.
 */
async function reportSubmitted(ctx: Context, job: JobSummary & Pick<JobDetail, "array_id">, wait: boolean, verb = "") {
  const what = `job ${job.id}${verb} ${job.status} in ${where(job)}`;
  if (job.array_id) {
    ctx.print(job.array_id, job);
    ctx.note(`[gridx: array ${job.array_id} in ${where(job)}, task 0 is ${job.id}; follow it with: gridx array ${job.array_id}]`);
    return EXIT.ok;
  }
  if (!wait) {
    ctx.print(job.id, job);
    ctx.note(`[gridx: ${what}; follow it with: gridx logs ${job.id} -f]`);
    return EXIT.ok;
  }
  ctx.note(`[gridx: ${what}; waiting for it to end]`);
  const done = await waitForEnd(ctx.api(), job.id);
  ctx.print(`${done.id}  ${statusText(done)}`, done);
  const note = endNote(done);
  if (note) ctx.note(note);
  return jobExitCode(done);
}

export const rerun = command({
  name: "rerun",
  group: "Jobs",
  summary: "submit a copy of a job (same spec, rerun_of naming it); print the copy's id",
  usage: ["rerun ID [--wait]"],
  options: SUBMIT_EXTRA,
  jobExitCodes: true,
  optionsHelp: `  -w, --wait                   wait for the copy to end and exit with its exit code (no logs)`,
  notes: "An array task's copy keeps its index; the copy's dependencies are settled against its parents as they are now.",
  examples: ["gridx rerun j_01jd2x7k8m", "gridx rerun --wait j_01jd2x7k8m; echo $?", "gridx list --array a_01jd2x7k8m --status failed --json | jq -r '.jobs[].id' | xargs -n1 gridx rerun"],
  async run({ values, positionals }, ctx) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError("give one job id: gridx rerun ID");
    const api = ctx.api();
    const copy = await api.json(api.rpc.v1.jobs[":id"].rerun.$post({ param: { id }, header: {} }), { notFound, forbidden: "rerunning needs the member role in the job's project" });
    // A rerun task is one job, not a new array: it is followed as a job.
    return reportSubmitted(ctx, { ...copy, array_id: null }, values.wait === true, ` (a rerun of ${id})`);
  },
});

const RUN_EXTRA = {
  "no-cancel": { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
} as const;

export const run = command({
  name: "run",
  group: "Jobs",
  summary: "submit a job, follow its logs, exit with its exit code (like docker run)",
  usage: ["run [options] FILE [ARGS...]", "run [options] --image IMG -- ARGV...", "run [options] --code-repo URL --code-commit REF [...] -- ARGV..."],
  options: { ...JOB_FLAGS, ...RUN_EXTRA },
  program: true,
  jobExitCodes: true,
  optionsHelp: `${JOB_FLAGS_HELP}
  -q, --quiet                  no [gridx: ...] notes on stderr; only the job's own output
  --no-cancel                  Ctrl-C detaches and leaves the job running, instead of canceling it`,
  notes: `${JOB_KINDS_HELP}

The job's stdout goes to stdout; its stderr and gridx's [gridx: ...] notes go to stderr.
Ctrl-C (or SIGTERM) cancels the job, waits for it to end and exits 130; a second Ctrl-C stops
waiting. With --json, stdout carries one JSON object per line: {"type":"log",...} for each log
line, then {"type":"end","job":{...}}.`,
  examples: [
    "gridx run job.py",
    "gridx run --memory 2g --timeout 10m train.py --epochs 3",
    "gridx run --image gridx/python:latest -- python3 -c 'import sys; sys.exit(3)'; echo $?   # 3",
    "echo 'print(1)' | gridx run -",
    "gridx run --json job.py | jq -c 'select(.type == \"log\") | .text'",
  ],
  async run({ values, positionals }, ctx) {
    if (values.array !== undefined) throw new UsageError("gridx run follows one job, and --array makes many: gridx submit --array N, then gridx array ID");
    const job = await submitJob(ctx, values, positionals);
    const api = ctx.api();
    const quiet = values.quiet === true;
    const note = (text: string) => {
      if (!quiet) ctx.io.stderr.write(text + "\n");
    };
    note(`[gridx: job ${job.id} ${job.status} in ${where(job)}; Ctrl-C ${values["no-cancel"] ? "detaches" : "cancels it"}]`);

    let interrupted = false;
    const onSignal = () => {
      if (interrupted || values["no-cancel"]) {
        note(values["no-cancel"] && !interrupted ? `[gridx: detached; job ${job.id} goes on: gridx logs ${job.id} -f]` : `[gridx: stopped waiting; job ${job.id} was asked to cancel]`);
        ctx.io.exit(EXIT.canceled);
      }
      interrupted = true;
      note(`[gridx: canceling job ${job.id}; Ctrl-C again to stop waiting]`);
      api.json(api.rpc.v1.jobs[":id"].cancel.$post({ param: { id: job.id } })).catch((err: unknown) => note(`[gridx: could not cancel ${job.id}: ${(err as Error).message}]`));
    };
    ctx.io.signals.on("SIGINT", onSignal);
    ctx.io.signals.on("SIGTERM", onSignal);
    let ended: JobEnd;
    try {
      const printer = new LogPrinter(ctx.io, { json: ctx.json, quiet });
      ended = await followLogs(api, job.id, (line) => printer.line(line));
    } finally {
      ctx.io.signals.off("SIGINT", onSignal);
      ctx.io.signals.off("SIGTERM", onSignal);
    }
    // The stream's end event says how it ended; the whole job is read only for --json or a failure's message.
    const done = ctx.json || (ended.status === "failed" && ended.failure_reason !== "exit_code") ? await getJob(api, job.id) : { ...ended, id: job.id };
    if (ctx.json) ctx.io.stdout.write(JSON.stringify({ type: "end", job: done }) + "\n");
    const end = endNote(done);
    if (end) note(end);
    return interrupted ? EXIT.canceled : jobExitCode(done);
  },
});

export const status = command({
  name: "status",
  group: "Jobs",
  summary: "show a job: status, why it waits, attempts and their usage, what it depends on, artifacts",
  usage: ["status ID"],
  options: {},
  optionsHelp: "",
  examples: ["gridx status j_01jd2x7k8m", "gridx status --json j_01jd2x7k8m | jq -r .status", "gridx status --json j_01jd2x7k8m | jq '.attempts[].usage'"],
  async run({ positionals }, ctx) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError("give one job id: gridx status ID");
    const j = await getJob(ctx.api(), id);
    const l = j.limits;
    const facts = keyValues([
      ["id", j.id],
      ["name", j.name ?? undefined],
      ["status", statusText(j)],
      ["message", j.failure_message ?? undefined],
      ["waiting", j.pending_reason ?? undefined],
      ["retrying", j.retry_at ? `${fromNow(j.retry_at)} (${j.retry_at})` : undefined],
      ["kind", j.kind],
      ["project", j.project],
      ["submitted by", j.submitted_by],
      ["tags", j.tags.length ? j.tags.join(" ") : undefined],
      ["array", j.array_id ? `${j.array_id} task ${j.array_index} (gridx array ${j.array_id})` : undefined],
      ["rerun of", j.rerun_of ?? undefined],
      ["schedule", j.schedule_id ?? undefined],
      ["pool", j.pool],
      ["worker", j.worker_id ?? undefined],
      ["attempt", attemptText(j)],
      ["priority", String(j.priority)],
      ["created", `${ago(j.created_at)} (${j.created_at})`],
      ["started", j.started_at ? `${ago(j.started_at)} (${j.started_at})` : undefined],
      ["finished", j.finished_at ? `${ago(j.finished_at)} (${j.finished_at})` : undefined],
      ["ran", j.started_at ? runTime(j) : undefined],
      ["usage", j.usage ? usageText(j.usage) : undefined],
      ["limits", `${l.cpus} cpu, ${mib(l.memory_mb)}, ${l.pids} pids, timeout ${duration(l.timeout_s * 1000)}`],
      ["requires", `${j.requirements.gpus} gpu, labels ${labels(j.requirements.labels)}`],
      ["queue ttl", j.queue_ttl_s !== null ? duration(j.queue_ttl_s * 1000) : undefined],
      ["parents", j.parents.length ? relativesText(j.parents) : undefined],
      ["children", j.children.length ? relativesText(j.children) : undefined],
      ["artifacts", j.artifacts.length ? `${j.artifacts.length} (gridx artifacts ls ${j.id})` : "none"],
    ]);
    ctx.print(j.attempts.length ? `${facts}\n\n${attemptsTable(j.attempts)}` : facts, j);
    return EXIT.ok;
  },
});

const LIST_FILTERS = {
  status: { type: "string" },
  pool: { type: "string" },
  project: { type: "string" },
  tag: { type: "string" },
  name: { type: "string" },
  "submitted-by": { type: "string" },
  array: { type: "string" },
} as const;

export const list = command({
  name: "list",
  group: "Jobs",
  summary: "list jobs, newest first",
  usage: ["list [--project P | -A] [--status S] [--pool P] [--tag K=V] [--name TEXT] [--submitted-by USER] [--array ID] [--limit N] [--cursor C | --all]"],
  options: { ...LIST_FILTERS, "all-projects": { type: "boolean", short: "A" }, limit: { type: "string", short: "n" }, cursor: { type: "string" }, all: { type: "boolean" } },
  optionsHelp: `  --project P                  only this project (default: GRIDX_PROJECT, else the saved
                               \`gridx config set project P\`, else every project you can read)
  -A, --all-projects           every project you can read, whatever the default
  --status S                   queued, assigned, running, completed, failed or canceled
  --pool P                     only this pool
  --tag KEY=VALUE              only jobs with this tag
  --name TEXT                  only jobs whose name contains TEXT
  --submitted-by USER          only jobs this user (by name, or admin) submitted
  --array ID                   only the tasks of this array
  -n, --limit N                jobs per page, 1 to 200 (default 20)
  --cursor C                   the page after C (printed when there are more)
  --all                        every page`,
  examples: ["gridx list", "gridx list --status failed --pool gpu", "gridx list --project lab --tag sweep=lr --submitted-by ada", "gridx list --all --json | jq -r '.jobs[].id'"],
  async run({ values, positionals }, ctx) {
    if (positionals.length) throw new UsageError(`gridx list takes no arguments (got ${positionals.join(" ")}); filter with --status, --pool, --project, --tag, --name, --submitted-by or --array`);
    if (values.project && values["all-projects"]) throw new UsageError("--project and --all-projects do not go together");
    if (values.tag !== undefined && values.tag.indexOf("=") <= 0) throw new UsageError(`--tag takes KEY=VALUE, such as sweep=lr, not "${values.tag}"`);
    const project = values["all-projects"] ? undefined : ctx.project(values.project);
    const filters = { ...values, project };
    const given = (Object.keys(LIST_FILTERS) as (keyof typeof LIST_FILTERS)[]).filter((f) => filters[f] !== undefined);
    const api = ctx.api();
    const limit = String(values.limit ? integer("--limit", values.limit, 1, 200) : 20);
    const query = Object.fromEntries(given.map((f) => [f.replace("-", "_"), filters[f]!])) as { status?: JobSummary["status"]; pool?: string; project?: string; tag?: string; name?: string; submitted_by?: string; array?: string };
    const jobs: JobSummary[] = [];
    let cursor = values.cursor;
    for (;;) {
      const page = await api.json(api.rpc.v1.jobs.$get({ query: { limit, ...query, ...(cursor ? { cursor } : {}) } }));
      jobs.push(...page.jobs);
      cursor = page.next_cursor ?? undefined;
      if (!values.all || !cursor) break;
    }
    const now = Date.now();
    const rows = jobs.map((j) => [j.id, statusText(j), j.kind, j.project, j.pool, j.exit_code === null ? "-" : String(j.exit_code), j.submitted_by, ago(j.created_at, now), runTime(j, now), j.name ?? "-"]);
    const header = ["ID", "STATUS", "KIND", "PROJECT", "POOL", "EXIT", "SUBMITTED BY", "CREATED", "RAN", "NAME"];
    ctx.print(jobs.length ? table(header, rows) : "no jobs", { jobs, next_cursor: cursor ?? null });
    if (cursor) ctx.note(`more: gridx list --cursor ${cursor}${given.map((f) => ` --${f} ${shellWord(filters[f]!)}`).join("")} (or --all)`);
    return EXIT.ok;
  },
});

export const logs = command({
  name: "logs",
  group: "Jobs",
  summary: "print a job's log; -f follows it until the job ends",
  usage: ["logs ID [-f]"],
  options: { follow: { type: "boolean", short: "f" }, quiet: { type: "boolean", short: "q" } },
  optionsHelp: `  -f, --follow                 keep printing new lines until the job ends
  -q, --quiet                  leave out gridx's own [gridx: ...] lines`,
  notes: "The job's stdout goes to stdout, its stderr and gridx's lines to stderr; with --json, one JSON\nobject per line on stdout. Every attempt's lines are shown, in order.",
  examples: ["gridx logs j_01jd2x7k8m", "gridx logs j_01jd2x7k8m -f", "gridx logs j_01jd2x7k8m --json | jq -r 'select(.stream == \"stderr\") | .text'"],
  async run({ values, positionals }, ctx) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError("give one job id: gridx logs ID [-f]");
    const printer = new LogPrinter(ctx.io, { json: ctx.json, quiet: values.quiet === true });
    if (values.follow) await followLogs(ctx.api(), id, (line) => printer.line(line));
    else await readLogs(ctx.api(), id, (line) => printer.line(line));
    return EXIT.ok;
  },
});

export const cancel = command({
  name: "cancel",
  group: "Jobs",
  summary: "cancel a job (a running container gets SIGTERM, then SIGKILL)",
  usage: ["cancel ID..."],
  options: {},
  optionsHelp: "",
  examples: ["gridx cancel j_01jd2x7k8m", "gridx list --status queued --json | jq -r '.jobs[].id' | xargs gridx cancel"],
  async run({ positionals }, ctx) {
    if (!positionals.length) throw new UsageError("give the id of the job to cancel: gridx cancel ID");
    const api = ctx.api();
    const done: JobDetail[] = [];
    for (const id of positionals) {
      const job = await api.json(api.rpc.v1.jobs[":id"].cancel.$post({ param: { id } }), { notFound });
      done.push(job);
      if (!ctx.json) ctx.io.stdout.write(`${job.id}  ${job.status}\n`);
    }
    if (ctx.json) ctx.print("", done.length === 1 ? done[0] : done);
    return EXIT.ok;
  },
});

export const artifactsLs = command({
  name: "artifacts ls",
  group: "Jobs",
  summary: "list a job's artifacts (its files in /work/output)",
  usage: ["artifacts ls ID"],
  options: {},
  optionsHelp: "",
  examples: ["gridx artifacts ls j_01jd2x7k8m"],
  async run({ positionals }, ctx) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError("give one job id: gridx artifacts ls ID");
    const { listArtifacts } = await import("../artifacts.ts");
    const artifacts = await listArtifacts(ctx.api(), id);
    const rows = artifacts.map((a) => [a.name, bytes(a.size), a.sha256.slice(0, 16), ago(a.created_at)]);
    ctx.print(artifacts.length ? table(["NAME", "SIZE", "SHA256", "CREATED"], rows) : `job ${id} has no artifacts`, { artifacts });
    return EXIT.ok;
  },
});

export const artifactsGet = command({
  name: "artifacts get",
  group: "Jobs",
  summary: "download an artifact, checking its sha256",
  usage: ["artifacts get ID NAME [-o FILE]"],
  options: { output: { type: "string", short: "o" } },
  optionsHelp: `  -o, --output FILE            where to write it (default: the name's last part; - for stdout)`,
  examples: ["gridx artifacts get j_01jd2x7k8m model.pt", "gridx artifacts get j_01jd2x7k8m out/metrics.json -o - | jq ."],
  async run({ values, positionals }, ctx) {
    const [id, name] = positionals;
    if (!id || !name || positionals.length > 2) throw new UsageError("give the job id and the artifact's name: gridx artifacts get ID NAME [-o FILE]");
    const { downloadArtifact } = await import("../artifacts.ts");
    const got = await downloadArtifact(ctx.api(), id, name, values.output);
    if (got.path !== "-") ctx.print(`${got.path}  ${bytes(got.size)}  sha256 ${got.sha256}  verified`, got);
    return EXIT.ok;
  },
});

export const jobCommands = [run, submit, rerun, status, list, logs, cancel, artifactsLs, artifactsGet];
