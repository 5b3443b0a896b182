/**
 * An example receiver of a pool's autoscaling hook (docs/autoscaling.md): it checks each call's
 * signature and age, and answers a `scale_up` by starting `--once` agents on this machine (each
 * takes one job, runs it and exits), never more than --max-agents at a time. A `scale_down` is
 * only logged: the agents it starts leave by themselves.
 *
 *   npm run build
 *   AUTOSCALE_SECRET=whsec_… GRIDX_URL=https://grid.example.com GRIDX_AGENT_TOKEN=gxa_… \
 *     node --import tsx examples/autoscaler/receiver.ts --port 9090 --max-agents 4
 *
 * Options: --host (127.0.0.1), --port (9090; 0 picks one), --max-agents (2), --state-dir (a
 * folder under the system's temporary one; each agent gets its own inside), --name-prefix
 * (autoscaled), --agent (the agent bundle, agent/dist/gridx-agent.mjs), --agent-arg ARG
 * (repeatable: passed to every agent, say `--agent-arg --allow-image=python:3.12`),
 * --tolerance-s (300: older calls are refused as replays).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdirSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** A call's body is small; anything bigger is not one. */
const MAX_BODY_BYTES = 1024 * 1024;

/** Call ids already acted on: a retried call (its first answer was lost) starts nothing more. */
const SEEN_CALLS = 1000;

const { values: opts } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "9090" },
    "max-agents": { type: "string", default: "2" },
    "state-dir": { type: "string", default: join(tmpdir(), "gridx-autoscaler") },
    "name-prefix": { type: "string", default: "autoscaled" },
    agent: { type: "string", default: join(ROOT, "agent", "dist", "gridx-agent.mjs") },
    "agent-arg": { type: "string", multiple: true, default: [] },
    "tolerance-s": { type: "string", default: "300" },
  },
});

const secret = process.env.AUTOSCALE_SECRET;
const maxAgents = Number(opts["max-agents"]);
const toleranceS = Number(opts["tolerance-s"]);
if (!secret || !process.env.GRIDX_URL || !process.env.GRIDX_AGENT_TOKEN) {
  console.error("set AUTOSCALE_SECRET (the hook's secret), GRIDX_URL and GRIDX_AGENT_TOKEN (an agent token of the pool)");
  process.exit(2);
}
if (!Number.isInteger(maxAgents) || maxAgents < 1) {
  console.error("--max-agents must be a whole number of at least 1");
  process.exit(2);
}

/** JSON lines, told apart from the agents' own (which share stdout) by `by`. */
const log = (msg: string, fields: Record<string, unknown> = {}) => console.log(JSON.stringify({ at: new Date().toISOString(), by: "autoscaler", msg, ...fields }));

/**
 * Whether a call is the control plane's: `gridx-signature` is `v1=` and the hex HMAC-SHA256,
 * keyed with the secret, of `<gridx-timestamp>.<body>`, and the timestamp is recent.
 */
function verified(key: string, headers: IncomingMessage["headers"], body: string, nowS: number, tolerance: number): boolean {
  const ts = String(headers["gridx-timestamp"] ?? "");
  if (!/^\d+$/.test(ts) || Math.abs(nowS - Number(ts)) > tolerance) return false;
  const expected = Buffer.from(`v1=${createHmac("sha256", key).update(`${ts}.${body}`).digest("hex")}`);
  const given = Buffer.from(String(headers["gridx-signature"] ?? ""));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const running = new Set<ChildProcess>();
const seen: string[] = [];
let started = 0;

/** Starts one `--once` agent in a state folder of its own; it leaves the set when it exits. */
function startAgent(callId: string): void {
  const name = `${opts["name-prefix"]}-${process.pid}-${++started}`;
  const stateDir = join(opts["state-dir"], name);
  mkdirSync(stateDir, { recursive: true });
  const child = spawn(process.execPath, [opts.agent, "--url", process.env.GRIDX_URL!, "--name", name, "--state-dir", stateDir, "--once", ...opts["agent-arg"]], {
    // GRIDX_AGENT_TOKEN travels in the environment, never in argv.
    env: process.env,
    stdio: ["ignore", "inherit", "inherit"],
  });
  running.add(child);
  log("agent started", { name, pid: child.pid, call_id: callId, running: running.size });
  child.on("exit", (code, signal) => {
    running.delete(child);
    log("agent exited", { name, code, signal, running: running.size });
  });
}

function answer(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string | null> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

type Call = { type: "scale_up"; call_id: string; pool: string; shortfall: { jobs: number } } | { type: "scale_down"; call_id: string; pool: string; workers: { id: string; name: string | null }[] };

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== "POST") return answer(res, 405, { error: "POST a gridx autoscaling call" });
  const body = await readBody(req);
  if (body === null) return answer(res, 413, { error: `a call is at most ${MAX_BODY_BYTES} bytes` });
  if (!verified(secret!, req.headers, body, Date.now() / 1000, toleranceS)) {
    log("refused: bad signature or stale timestamp", { delivery: req.headers["gridx-delivery-id"] ?? null });
    return answer(res, 401, { error: "bad signature or stale timestamp" });
  }
  let call: Call;
  try {
    call = JSON.parse(body) as Call;
  } catch {
    return answer(res, 400, { error: "the body is not JSON" });
  }
  if (seen.includes(call.call_id)) return answer(res, 200, { duplicate: true, running: running.size });
  seen.push(call.call_id);
  if (seen.length > SEEN_CALLS) seen.shift();
  if (call.type === "scale_down") {
    log("scale_down hint (the --once agents leave by themselves)", { pool: call.pool, workers: call.workers.map((w) => w.name ?? w.id) });
    return answer(res, 200, { running: running.size });
  }
  const room = Math.max(0, maxAgents - running.size);
  const wanted = Math.min(call.shortfall.jobs, room);
  log("scale_up", { pool: call.pool, call_id: call.call_id, jobs: call.shortfall.jobs, starting: wanted, running: running.size, max_agents: maxAgents });
  for (let i = 0; i < wanted; i++) startAgent(call.call_id);
  answer(res, 202, { started: wanted, running: running.size });
}

const server = createServer((req, res) => {
  handle(req, res).catch((err: unknown) => {
    log("failed", { error: err instanceof Error ? err.message : String(err) });
    if (!res.headersSent) answer(res, 500, { error: "the receiver failed" });
  });
});

server.listen(Number(opts.port), opts.host, () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : opts.port;
  log(`listening on http://${opts.host}:${port}/`, { max_agents: maxAgents });
});

// Stopping the receiver stops its agents too (each drains: its job finishes first).
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    server.close();
    for (const child of running) child.kill("SIGTERM");
    if (running.size === 0) process.exit(0);
    setInterval(() => running.size === 0 && process.exit(0), 100);
  });
}
