/**
 * What the fault suite (faults.test.ts) does to a running grid: crash a process tree, make the
 * Docker engine hang, inject faults into a pool's coordinator, and read what the control
 * plane counted and recorded.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { engineAddress } from "../../agent/src/docker/engine.ts";
import { agentInstance } from "../../agent/src/identity.ts";
import { WARDEN_LABELS } from "../../agent/src/runner/warden.ts";
import type { Counter } from "../../control-plane/src/coordinator/metrics.ts";
import { ROOT, runCommand } from "../../scripts/local-grid.ts";
import { readResponse } from "../helpers/http.ts";
import { pollUntil } from "../helpers/poll.ts";
import { api, cp, removeContainersOfAgent } from "./helpers.ts";

/** A process's state letter from /proc (R, S, T, Z...), or null once it is gone. */
function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? null;
  } catch {
    return null;
  }
}

/** Every process below `root`, from /proc. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  const next = [root];
  while (next.length) {
    const kids = children.get(next.pop()!) ?? [];
    found.push(...kids);
    next.push(...kids);
  }
  return found;
}

/**
 * `kill -9` of a process and everything it started, as a machine losing power would do it:
 * wrangler dev's workerd is its child, and killing wrangler alone would leave workerd serving.
 * Resolves once none of them runs (a zombie counts as gone: it holds no port and no file).
 */
export async function crash(proc: ChildProcess): Promise<void> {
  const pids = [proc.pid!, ...descendants(proc.pid!)];
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const alive = (pid: number) => ![null, "Z", "X"].includes(procState(pid));
  await pollUntil(async () => pids.filter(alive), (left) => left.length === 0, { timeoutMs: 30_000, intervalMs: 100, what: "the killed processes" });
}

export interface SwitchableEngine {
  /** Give it to an agent as DOCKER_HOST=unix://<socketPath>. */
  socketPath: string;
  /** From now on every new connection is taken and never answered: the engine hangs. */
  hang(): void;
  /** New connections reach the real engine again. */
  recover(): void;
  close(): Promise<void>;
}

/**
 * A Docker engine that can be made to hang while its agent runs: a unix socket that passes
 * bytes both ways to the real engine until `hang()`, then takes connections and says nothing.
 * Bytes, not HTTP, so attach streams (which Docker takes over from HTTP) pass too. The agent
 * starts in full against it (its startup pings and its lease warden need an engine that
 * answers), so the test sees a healthy agent whose engine goes unresponsive mid-life.
 */
export async function switchableEngine(): Promise<SwitchableEngine> {
  const real = engineAddress(process.env);
  if (!("socketPath" in real)) throw new Error("the switchable engine passes to a unix socket; DOCKER_HOST is tcp://");
  const socketPath = join(mkdtempSync(join(tmpdir(), "gridx-switch-engine-")), "docker.sock");
  const open = new Set<Socket>();
  const track = (s: Socket) => {
    open.add(s);
    s.on("close", () => open.delete(s));
    return s;
  };
  let hung = false;
  const server = createServer((client) => {
    track(client).on("error", () => client.destroy());
    if (hung) {
      client.resume(); // read the request, never answer
      return;
    }
    const engine = track(connect(real.socketPath));
    engine.on("error", () => client.destroy());
    client.on("close", () => engine.destroy());
    engine.on("close", () => client.destroy());
    client.pipe(engine).pipe(client);
  });
  server.listen(socketPath);
  await new Promise<void>((resolve, reject) => server.once("listening", resolve).once("error", reject));
  return {
    socketPath,
    hang: () => (hung = true),
    recover: () => (hung = false),
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(r));
      rmSync(dirname(socketPath), { recursive: true, force: true });
    },
  };
}

/** Calls the test-only fault hook of a pool's coordinator; resolves with the D1 faults injected so far. */
export async function injectFault(body: { pool: string; d1?: { fail_next: number; match?: string }; reset?: boolean }): Promise<number> {
  const res = await api("/v1/test/faults", { method: "POST", json: body });
  if (res.status !== 200) throw new Error(`the fault hook answered ${res.status}: ${res.text} (is GRIDX_FAULTS on?)`);
  return (res.json as { injected: number }).injected;
}

/** A coordinator counter from /metrics: the sum of its samples carrying every one of `labels`. */
export async function counter(name: Counter, labels: Record<string, string>): Promise<number> {
  const { text } = await api("/metrics");
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (m?.[1] !== name) continue;
    const have = m[2]!.split(",");
    if (wanted.every((w) => have.includes(w))) sum += Number(m[3]);
  }
  return sum;
}

/** Rows of a read on the shared control plane's D1, straight from its local database. */
export async function d1Rows<T>(sql: string): Promise<T[]> {
  const { stdout } = await promisify(execFile)(join(ROOT, "node_modules", ".bin", "wrangler"), ["d1", "execute", "DB", "--local", "--persist-to", join(cp().stateDir, "state"), "--json", "--command", sql], {
    cwd: ROOT,
    env: { ...process.env, PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH ?? ""}`, WRANGLER_SEND_METRICS: "false" },
  });
  return (JSON.parse(stdout) as { results: T[] }[])[0]!.results;
}

/** A request to a control plane other than the shared one (a test's own, which it crashes). */
export function planeApi(plane: { url: string; adminToken: string }) {
  return async (path: string, json?: unknown) => {
    const init = json === undefined ? {} : { method: "POST", body: JSON.stringify(json) };
    return (await readResponse(await fetch(plane.url + path, { ...init, headers: { authorization: `Bearer ${plane.adminToken}`, "content-type": "application/json" } }))).json;
  };
}

/** `docker inspect`'s state of a container. */
export async function containerState(id: string): Promise<{ Status: string; Running: boolean; ExitCode: number }> {
  return JSON.parse(await runCommand("docker", ["inspect", "--format", "{{json .State}}", id])) as { Status: string; Running: boolean; ExitCode: number };
}

/**
 * What an agent killed for good leaves on the engine: its containers and its lease warden,
 * which keeps running (restarted by the engine) until an agent of that installation removes it.
 */
export async function removeLeftoversOf(agent: { token: string }, name: string): Promise<void> {
  await removeContainersOfAgent(name);
  const out = await runCommand("docker", ["ps", "-aq", "--filter", `label=${WARDEN_LABELS.instance}=${agentInstance(cp().url, agent.token, name)}`]);
  for (const id of out.split("\n").filter(Boolean)) await runCommand("docker", ["rm", "-f", id]).catch(() => undefined);
}
