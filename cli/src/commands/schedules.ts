import { readFileSync } from "node:fs";
import type { JobRequest } from "../../../protocol/index.ts";
import type { ApiClient } from "../api.ts";
import { integer } from "../args.ts";
import { command, type Context } from "../cli.ts";
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { ago, fromNow, keyValues, table } from "../format.ts";

const notFound = "see the schedules you can read with `gridx schedules list`";
const memberOnly = "changing a schedule needs the member role in its project";

type Schedule = Awaited<ReturnType<typeof getSchedule>>;

function getSchedule(api: ApiClient, id: string) {
  return api.json(api.rpc.v1.schedules[":id"].$get({ param: { id } }), { notFound });
}

const when = (at: string | null, now = Date.now()) => (at === null ? "-" : Date.parse(at) > now ? fromNow(at, now) : ago(at, now));

function scheduleText(s: Schedule): string {
  return keyValues([
    ["id", s.id],
    ["name", s.name],
    ["project", s.project],
    ["cron", `${s.cron} (${s.timezone})`],
    ["overlap", s.overlap],
    ["state", s.paused ? "paused (gridx schedules resume ID)" : "active"],
    ["next run", s.next_run_at ? `${when(s.next_run_at)} (${s.next_run_at})` : "-"],
    ["last run", s.last_run_at ? `${when(s.last_run_at)} (${s.last_run_at})` : "-"],
    ["submits as", s.submitted_by],
  ]);
}

function idArg(name: string, positionals: string[]): string {
  const [id] = positionals;
  if (!id || positionals.length > 1) throw new UsageError(`give one schedule id: gridx schedules ${name} ID`);
  return id;
}

export const schedulesList = command({
  name: "schedules list",
  group: "Jobs",
  summary: "list the schedules of your projects: cron, next and last run",
  usage: ["schedules list [--project P]"],
  options: { project: { type: "string" } },
  optionsHelp: "  --project P                  only this project's schedules",
  examples: ["gridx schedules list", "gridx schedules list --project lab --json | jq -r '.schedules[].id'"],
  async run({ values, positionals }, ctx) {
    if (positionals.length) throw new UsageError("gridx schedules list takes no arguments");
    const api = ctx.api();
    const body = await api.json(api.rpc.v1.schedules.$get({ query: values.project ? { project: values.project } : {} }));
    const now = Date.now();
    const rows = body.schedules.map((s) => [s.id, s.name, s.project, `${s.cron} (${s.timezone})`, s.paused ? "paused" : when(s.next_run_at, now), when(s.last_run_at, now)]);
    ctx.print(rows.length ? table(["ID", "NAME", "PROJECT", "CRON", "NEXT", "LAST"], rows) : "no schedules yet: gridx schedules create NAME --cron EXPR --job FILE", body);
    return EXIT.ok;
  },
});

export const schedulesCreate = command({
  name: "schedules create",
  group: "Jobs",
  summary: "run a job on a cron expression",
  usage: ["schedules create NAME --cron EXPR --job FILE [--timezone TZ] [--overlap skip|allow] [--project P]"],
  options: { cron: { type: "string" }, job: { type: "string" }, timezone: { type: "string" }, overlap: { type: "string" }, project: { type: "string" } },
  optionsHelp: `  --cron EXPR                  5 fields (minute hour day-of-month month day-of-week), or @hourly, @daily...
  --job FILE                   the job as JSON, the body of POST /v1/jobs (- for stdin)
  --timezone TZ                the zone EXPR is read in (default UTC), e.g. Europe/Berlin
  --overlap skip|allow         skip (default): no new job while the last one has not finished
  --project P                  the job's project, where FILE names none (default: GRIDX_PROJECT)`,
  notes: "Ticks missed while the control plane was down are not caught up: the next run stands for them. See docs/schedules.md.",
  examples: [
    "gridx schedules create nightly --cron '0 3 * * *' --timezone Europe/Berlin --job nightly.json",
    "echo '{\"kind\":\"python\",\"python\":{\"script\":\"print(1)\"}}' | gridx schedules create every-15 --cron '*/15 * * * *' --job -",
  ],
  async run({ values, positionals }, ctx) {
    const [name] = positionals;
    if (!name || positionals.length > 1) throw new UsageError("give the schedule a name: gridx schedules create NAME --cron EXPR --job FILE");
    if (!values.cron) throw new UsageError("say when it runs: --cron EXPR, such as --cron '0 3 * * *'");
    if (!values.job) throw new UsageError("say what it runs: --job FILE, a job as JSON (the body of POST /v1/jobs)");
    if (values.overlap !== undefined && values.overlap !== "skip" && values.overlap !== "allow") throw new UsageError(`--overlap is skip or allow, not ${values.overlap}`);
    const job = readJob(values.job, ctx);
    const project = ctx.project(values.project);
    if (job.project === undefined && project) job.project = project;
    const api = ctx.api();
    const s = await api.json(
      api.rpc.v1.schedules.$post({ json: { name, cron: values.cron, job, ...(values.timezone ? { timezone: values.timezone } : {}), ...(values.overlap ? { overlap: values.overlap } : {}) } }),
      { forbidden: "creating a schedule needs the member role in the job's project", fields: [["name", "NAME"], ["cron", "--cron"], ["timezone", "--timezone"], ["job", "--job"]] },
    );
    ctx.print(scheduleText(s), s);
    ctx.note(`[gridx: schedule ${s.id} created; its runs: gridx schedules runs ${s.id}]`);
    return EXIT.ok;
  },
});

/** The job file as JSON: an object, checked by the server. */
function readJob(path: string, ctx: Context): JobRequest {
  let text: string;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (err) {
    throw new UsageError(`--job ${path}: ${(err as Error).message}`);
  }
  let job: unknown;
  try {
    job = JSON.parse(text);
  } catch {
    throw new UsageError(`--job ${path}: not JSON; write the job as the body of POST /v1/jobs${ctx.json ? "" : " (see gridx submit --help for its fields)"}`);
  }
  if (typeof job !== "object" || job === null || Array.isArray(job)) throw new UsageError(`--job ${path}: a job is a JSON object`);
  return job as JobRequest;
}

export const schedulesShow = command({
  name: "schedules show",
  group: "Jobs",
  summary: "show a schedule: cron, timezone, next and last run, the job it submits",
  usage: ["schedules show ID"],
  options: {},
  optionsHelp: "",
  examples: ["gridx schedules show sch_01jd2x7k8m", "gridx schedules show --json sch_01jd2x7k8m | jq .job"],
  async run({ positionals }, ctx) {
    const s = await getSchedule(ctx.api(), idArg("show", positionals));
    ctx.print(scheduleText(s), s);
    return EXIT.ok;
  },
});

/** pause and resume: one POST each, the same answer. */
const toggle = (verb: "pause" | "resume", summary: string) =>
  command({
    name: `schedules ${verb}`,
    group: "Jobs",
    summary,
    usage: [`schedules ${verb} ID`],
    options: {},
    optionsHelp: "",
    examples: [`gridx schedules ${verb} sch_01jd2x7k8m`],
    async run({ positionals }, ctx) {
      const id = idArg(verb, positionals);
      const api = ctx.api();
      const route = api.rpc.v1.schedules[":id"][verb];
      const s = await api.json(route.$post({ param: { id } }), { notFound, forbidden: memberOnly });
      ctx.print(scheduleText(s), s);
      return EXIT.ok;
    },
  });

export const schedulesPause = toggle("pause", "pause a schedule: no tick fires until it is resumed");
export const schedulesResume = toggle("resume", "resume a paused schedule from its next tick after now");

export const schedulesDelete = command({
  name: "schedules delete",
  group: "Jobs",
  summary: "delete a schedule and its runs (the jobs it submitted stay)",
  usage: ["schedules delete ID"],
  options: {},
  optionsHelp: "",
  examples: ["gridx schedules delete sch_01jd2x7k8m"],
  async run({ positionals }, ctx) {
    const id = idArg("delete", positionals);
    const api = ctx.api();
    await api.ok(api.rpc.v1.schedules[":id"].$delete({ param: { id } }), { notFound, forbidden: memberOnly });
    ctx.print(`deleted schedule ${id}`, { id, deleted: true });
    return EXIT.ok;
  },
});

export const schedulesRuns = command({
  name: "schedules runs",
  group: "Jobs",
  summary: "a schedule's runs, newest first: the job each tick submitted, or why none",
  usage: ["schedules runs ID [--limit N]"],
  options: { limit: { type: "string" } },
  optionsHelp: "  --limit N                    at most N runs (default 50, at most 200)",
  examples: ["gridx schedules runs sch_01jd2x7k8m", "gridx schedules runs sch_01jd2x7k8m --json | jq -r '.runs[] | select(.outcome == \"refused\") | .message'"],
  async run({ values, positionals }, ctx) {
    const id = idArg("runs", positionals);
    const limit = values.limit === undefined ? undefined : integer("--limit", values.limit);
    const api = ctx.api();
    const body = await api.json(api.rpc.v1.schedules[":id"].runs.$get({ param: { id }, query: limit === undefined ? {} : { limit: String(limit) } }), { notFound });
    const now = Date.now();
    const rows = body.runs.map((r) => [r.tick_at, ago(r.tick_at, now), r.outcome, r.job_id ?? "-", r.message ?? ""]);
    ctx.print(rows.length ? table(["TICK", "WHEN", "OUTCOME", "JOB", "MESSAGE"], rows) : "no runs yet", body);
    return EXIT.ok;
  },
});

export const scheduleCommands = [schedulesList, schedulesCreate, schedulesShow, schedulesPause, schedulesResume, schedulesDelete, schedulesRuns];
