import type { ApiClient } from "../api.ts";
import { command } from "../cli.ts";
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { ago, labels, mib, table } from "../format.ts";

const adminOnly = "log in with the admin token to drain (gridx login URL)";

/** A worker by id (`w_...`), or by name, within --pool when names repeat across pools. */
export async function resolveWorker(api: ApiClient, ref: string, pool?: string): Promise<string> {
  if (ref.startsWith("w_")) return ref;
  const { workers } = await api.json(api.rpc.v1.workers.$get({ query: pool ? { pool } : {} }));
  const named = workers.filter((w) => w.name === ref);
  if (named.length === 1) return named[0]!.id;
  if (!named.length) throw new UsageError(`no worker named ${ref}${pool ? ` in pool ${pool}` : ""}; see \`gridx workers\``);
  throw new UsageError(`${named.length} workers are named ${ref} (pools ${named.map((w) => w.pool).join(", ")}): add --pool, or give the worker's id`);
}

export const workers = command({
  name: "workers",
  group: "Grid",
  summary: "list the grid's workers: status, jobs running, capacity",
  usage: ["workers [--pool P] [--outdated]"],
  options: { pool: { type: "string" }, outdated: { type: "boolean" } },
  optionsHelp: "  --pool P                     only this pool\n  --outdated                   only workers whose agent is older than the control plane recommends",
  examples: ["gridx workers", "gridx workers --outdated", "gridx workers --pool gpu --json | jq -r '.workers[] | select(.status == \"online\") | .name'"],
  async run({ values, positionals }, ctx) {
    if (positionals.length) throw new UsageError("gridx workers takes no arguments; filter with --pool");
    const api = ctx.api();
    const body = await api.json(api.rpc.v1.workers.$get({ query: { ...(values.pool && { pool: values.pool }), ...(values.outdated && { outdated: "1" as const }) } }));
    const now = Date.now();
    const rows = body.workers.map((w) => [
      w.name,
      w.id,
      w.pool,
      w.status,
      w.outdated ? `${w.agent_version} (outdated)` : w.agent_version,
      `${w.running}/${w.slots}`,
      String(w.caps.cpu_cores),
      mib(w.caps.memory_mb),
      String(w.caps.gpus),
      ago(w.last_seen, now),
      labels(w.caps.labels),
    ]);
    ctx.print(rows.length ? table(["NAME", "ID", "POOL", "STATUS", "VERSION", "JOBS", "CPUS", "MEMORY", "GPUS", "SEEN", "LABELS"], rows) : values.outdated ? "no outdated workers" : "no workers yet: start an agent (see the README's Agent section)", body);
    return EXIT.ok;
  },
});

const drainCommand = (drain: boolean) =>
  command({
    name: drain ? "drain" : "undrain",
    group: "Grid",
    summary: drain ? "stop giving a worker new jobs (running ones go on); admin" : "let a drained worker take jobs again; admin",
    usage: [`${drain ? "drain" : "undrain"} WORKER [--pool P]`],
    options: { pool: { type: "string" } },
    optionsHelp: "  --pool P                     the worker's pool, when its name is not unique",
    notes: "WORKER is a worker's id (w_...) or its name (as `gridx workers` shows them).",
    examples: [`gridx ${drain ? "drain" : "undrain"} lab-3`, `gridx ${drain ? "drain" : "undrain"} w_01jd2x7k8m`],
    async run({ values, positionals }, ctx) {
      const [ref] = positionals;
      if (!ref || positionals.length > 1) throw new UsageError(`give one worker: gridx ${drain ? "drain" : "undrain"} WORKER`);
      const api = ctx.api();
      const id = await resolveWorker(api, ref, values.pool);
      const hints = { notFound: "see `gridx workers`", forbidden: adminOnly };
      const w = await api.json(drain ? api.rpc.v1.workers[":id"].drain.$post({ param: { id } }) : api.rpc.v1.workers[":id"].undrain.$post({ param: { id } }), hints);
      const human = drain ? `${w.name} (${w.id}) is ${w.status}: no new jobs; ${w.running} running go on` : `${w.name} (${w.id}) is ${w.status}`;
      ctx.print(human, w);
      return EXIT.ok;
    },
  });

export const drain = drainCommand(true);
export const undrain = drainCommand(false);

export const gridCommands = [workers, drain, undrain];
