import type { ApiClient } from "../api.ts";
import { command, type Context } from "../cli.ts";
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { followEvents, isTerminal } from "../events.ts";
import { table } from "../format.ts";
import { buildJobRequest, JOB_FLAGS, JOB_FLAGS_HELP, JOB_KINDS_HELP, type JobFlags } from "../job-request.ts";
import { readScript } from "./jobs.ts";
import { resolveWorker } from "./grid.ts";

const notFound = "a broadcast's id (b_…) is what gridx broadcast printed";

type Broadcast = Awaited<ReturnType<typeof getBroadcast>>;

function getBroadcast(api: ApiClient, id: string) {
  return api.json(api.rpc.v1.broadcasts[":id"].$get({ param: { id } }), { notFound });
}

const HEADER = ["WORKER", "ID", "JOB", "STATUS", "EXIT"];
const outcome = (w: Broadcast["workers"][number]) => (w.status === "failed" && w.failure_reason !== "exit_code" ? `failed (${w.failure_reason})` : w.status);

/** One line per worker, then the totals. */
function broadcastText(b: Broadcast): string {
  const rows = b.workers.map((w) => [w.worker_name ?? "(forgotten)", w.worker_id, w.job_id, outcome(w), w.exit_code === null ? "-" : String(w.exit_code)]);
  const counts = Object.entries(b.counts)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`)
    .join(", ");
  return `${table(HEADER, rows)}\n${b.workers.length} workers: ${counts}${b.done ? "" : " (not done)"}`;
}

/** 0 once every job completed, 1 when one failed or was canceled; a broadcast not yet done is 0. */
const exitOf = (b: Broadcast) => (b.counts.failed + b.counts.canceled > 0 ? EXIT.error : EXIT.ok);

/** Waits until every job of the broadcast has ended, pushed by the project's events stream (no polling). */
async function waitForBroadcast(api: ApiClient, b: Broadcast): Promise<Broadcast> {
  const left = new Set(b.workers.filter((w) => !isTerminal(w.status)).map((w) => w.job_id));
  if (left.size === 0) return b;
  await followEvents<true>(
    api,
    { project: b.project },
    (event) => {
      if (isTerminal(event.status)) left.delete(event.job_id);
      return left.size === 0 ? true : undefined;
    },
    {
      // The stream may open after some ended: they are read once, then the events say the rest.
      opened: async () => {
        for (const w of (await getBroadcast(api, b.id)).workers) if (isTerminal(w.status)) left.delete(w.job_id);
        return left.size === 0 ? true : undefined;
      },
    },
  );
  return getBroadcast(api, b.id);
}

async function report(ctx: Context, api: ApiClient, id: string, wait: boolean): Promise<number> {
  const now = await getBroadcast(api, id);
  if (!wait) {
    ctx.print(`${id}\n${broadcastText(now)}`, now);
    ctx.note(`[gridx: broadcast ${id} to pool ${now.pool}; follow it with: gridx broadcast show ${id} --wait]`);
    return EXIT.ok;
  }
  ctx.note(`[gridx: broadcast ${id}: ${now.workers.length} jobs in pool ${now.pool} (project ${now.project}); waiting for them to end]`);
  const done = await waitForBroadcast(api, now);
  ctx.print(broadcastText(done), done);
  return exitOf(done);
}

const BROADCAST_FLAGS = { ...JOB_FLAGS, worker: { type: "string", multiple: true }, "no-wait": { type: "boolean" } } as const;

export const broadcast = command({
  name: "broadcast",
  group: "Grid",
  summary: "run a job once on every online worker of a pool (or on the --worker ones); wait and print each worker's result",
  usage: ["broadcast --pool P [--worker W]... [options] --image IMG -- ARGV...", "broadcast --pool P [options] FILE [ARGS...]"],
  options: BROADCAST_FLAGS,
  program: true,
  optionsHelp: `${JOB_FLAGS_HELP.replace(/ {2}--worker ID[^\n]*\n/, "")}
  --worker W                   only this worker (an id, or a name in --pool), online (repeat)
  --no-wait                    print the broadcast's id and its jobs, and do not wait`,
  notes: `${JOB_KINDS_HELP}
Each worker's job is a normal job pinned to that worker (gridx status, logs and cancel work on
it). Waits until every job ended, then prints one line per worker and exits 0 if all completed,
1 if any failed or was canceled. A worker that goes offline first leaves its job queued until it
is back (or its --queue-ttl). The pool runs at most BROADCAST_MAX_WORKERS jobs per broadcast.`,
  examples: [
    "gridx broadcast --pool lab --image gridx/python:latest -- python3 -c 'import platform; print(platform.node())'",
    "gridx broadcast --pool lab --worker n1 --worker n3 --image gridx/python:latest -- df -h /",
    "gridx broadcast --pool lab --queue-ttl 10m check.py",
    "gridx broadcast --json --pool lab check.py | jq -r '.workers[] | select(.status != \"completed\") | .worker_name'",
  ],
  async run({ values, positionals }, ctx) {
    const pool = values.pool;
    if (!pool) throw new UsageError("give the pool: gridx broadcast --pool P ...");
    const { worker: listed, "no-wait": noWait, ...flags } = values;
    const project = ctx.project(flags.project);
    const job = buildJobRequest({ ...(flags as JobFlags), ...(project ? { project } : {}) }, positionals, { readScript, env: ctx.io.env });
    const api = ctx.api();
    const workers = listed?.length ? await Promise.all(listed.map((w) => resolveWorker(api, w, pool))) : undefined;
    const { pool: _given, ...template } = job;
    const created = await api.json(api.rpc.v1.pools[":pool"].broadcast.$post({ param: { pool }, json: { job: template, ...(workers ? { workers } : {}) } }), {
      fields: [
        ["workers", "--worker"],
        ["pool", "--pool"],
      ],
      forbidden: "broadcasting needs the member role in the job's project",
    });
    return report(ctx, api, created.id, noWait !== true);
  },
});

export const broadcastShow = command({
  name: "broadcast show",
  group: "Grid",
  summary: "show a broadcast: each worker's job and result",
  usage: ["broadcast show ID [--wait]"],
  options: { wait: { type: "boolean", short: "w" } },
  optionsHelp: "  -w, --wait                   wait until every job ended; exit 1 if any failed or was canceled",
  examples: ["gridx broadcast show b_01jd2x7k8m", "gridx broadcast show --wait b_01jd2x7k8m"],
  async run({ values, positionals }, ctx) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError("give one broadcast id: gridx broadcast show ID");
    const api = ctx.api();
    if (values.wait) return report(ctx, api, id, true);
    const b = await getBroadcast(api, id);
    ctx.print(broadcastText(b), b);
    return b.done ? exitOf(b) : EXIT.ok;
  },
});

export const broadcastCommands = [broadcast, broadcastShow];
