import { command } from "../cli.ts";
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { table } from "../format.ts";

const adminOnly = "upgrading a pool needs the admin token (gridx login URL)";

export const agentPublish = command({
  name: "agent publish",
  group: "Grid",
  summary: "publish an agent bundle, for pools to upgrade to (admin)",
  usage: ["agent publish VERSION [--file FILE]"],
  options: { file: { type: "string" } },
  optionsHelp: "  --file FILE                  the bundle (default: agent/dist/gridx-agent.mjs, as `npm run build` leaves it in the gridx folder)",
  notes: "VERSION must be the version built into the bundle (package.json's, or `scripts/build-agent.ts --version`): an agent reports it at hello, and an upgrade is done when it does. A published version is never replaced.",
  examples: ["gridx agent publish 0.2.0                  # after npm run build: agent/dist/gridx-agent.mjs", "gridx agent publish 0.2.0-rc1 --file /tmp/gridx-agent.mjs"],
  async run({ values, positionals }, ctx) {
    const [version] = positionals;
    if (!version || positionals.length > 1) throw new UsageError("give the bundle's version: gridx agent publish VERSION [--file FILE]");
    const { publishBundle } = await import("../agent-bundles.ts");
    const b = await publishBundle(ctx.api(), values.file ?? "agent/dist/gridx-agent.mjs", version, (line) => ctx.note(line));
    ctx.print(`agent bundle ${b.version}  ${b.size} bytes  sha256 ${b.sha256}  ${b.status}`, b);
    return EXIT.ok;
  },
});

/** Each worker's line in an upgrade's table. */
const upgradeRows = (body: { workers: { name: string; version: string; online: boolean; from: string | null; to: string | null; state: string | null; reason: string | null }[] }) =>
  body.workers.map((w) => [w.name, w.online ? "online" : "offline", w.version, w.from ?? "-", w.to ?? "-", w.state ?? "-", w.reason ?? ""]);
const HEADER = ["WORKER", "STATUS", "RUNS", "FROM", "TO", "STATE", "REASON"];

export const upgrade = command({
  name: "upgrade",
  group: "Grid",
  summary: "upgrade a pool's agents to a published bundle (admin)",
  usage: ["upgrade POOL VERSION"],
  options: {},
  optionsHelp: "",
  notes: "Each agent fetches the bundle, checks its SHA-256, drains, lets its jobs finish, and restarts into it; one that does not connect is rolled back. Follow it with `gridx upgrade show POOL`; asking again retries the workers that failed or rolled back.",
  examples: ["gridx upgrade default 0.2.0", "gridx upgrade show default"],
  async run({ positionals }, ctx) {
    const [pool, version] = positionals;
    if (!pool || !version || positionals.length > 2) throw new UsageError("give the pool and the version: gridx upgrade POOL VERSION");
    const api = ctx.api();
    const body = await api.json(api.rpc.v1.pools[":pool"].upgrade.$post({ param: { pool }, json: { version } }), { forbidden: adminOnly, fields: [["version", "VERSION"]], notFound: "see `gridx agent publish`" });
    ctx.print(`pool ${pool}: upgrading to ${version}\n${table(HEADER, upgradeRows(body))}`, body);
    return EXIT.ok;
  },
});

export const upgradeShow = command({
  name: "upgrade show",
  group: "Grid",
  summary: "where a pool's agent upgrade stands, worker by worker",
  usage: ["upgrade show POOL"],
  options: {},
  optionsHelp: "",
  examples: ["gridx upgrade show default", "gridx upgrade show default --json | jq -r '.workers[] | select(.state == \"rolled_back\") | .name'"],
  async run({ positionals }, ctx) {
    const [pool] = positionals;
    if (!pool || positionals.length > 1) throw new UsageError("give the pool: gridx upgrade show POOL");
    const api = ctx.api();
    const body = await api.json(api.rpc.v1.pools[":pool"].upgrade.$get({ param: { pool } }));
    ctx.print(body.version ? `pool ${pool}: to ${body.version}\n${table(HEADER, upgradeRows(body))}` : `pool ${pool}: no upgrade asked for`, body);
    return EXIT.ok;
  },
});

export const fleetCommands = [agentPublish, upgrade, upgradeShow];
