import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { inject } from "vitest";
import { readResponse } from "../helpers/http.ts";
import { pollUntil } from "../helpers/poll.ts";
import { issueAgentToken, runCommand, startAgent, startControlPlane, writeSecretsFile, type AgentProcess } from "../../scripts/local-grid.ts";
import { cliBin } from "../../scripts/build-cli.ts";
import { E2E_VARS } from "./global-setup.ts";

export const cp = () => inject("controlPlane");

export async function api(path: string, init: RequestInit & { json?: unknown } = {}) {
  const { url, adminToken } = cp();
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${adminToken}`);
  if (init.json !== undefined) headers.set("content-type", "application/json");
  return readResponse(await fetch(url + path, { ...init, headers, body: init.json !== undefined ? JSON.stringify(init.json) : init.body }));
}

/**
 * A control plane of a test's own, on `dir`'s state and `port`, so it can be stopped and started
 * again on the same state. Its worker timeout is longer than a restart plus an agent's reconnect
 * backoff take on a loaded 2-core machine (a CI run saw a restart outlast 30 s).
 */
export function ownControlPlane(dir: string, port: number, vars: Record<string, string> = {}) {
  const adminToken = "restart-admin";
  return startControlPlane({ port, adminToken, secretsFile: writeSecretsFile(join(dir, "secrets.env"), adminToken), persistTo: join(dir, "state"), vars: { ...E2E_VARS, WORKER_TIMEOUT_S: "60", ...vars } });
}

export const uniqueName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** Starts a real agent process in its own pool and state folder. */
export async function launchAgent(opts: { pool: string; name: string; slots?: number; stateDir?: string; extraArgs?: string[]; env?: Record<string, string> }): Promise<AgentProcess & { stateDir: string; token: string }> {
  const token = await issueAgentToken(cp(), opts.name, opts.pool);
  const stateDir = opts.stateDir ?? mkdtempSync(join(cp().stateDir, `agent-${opts.name}-`));
  const agent = startAgent({ url: cp().url, token, name: opts.name, stateDir, slots: opts.slots ?? 1, extraArgs: opts.extraArgs, env: opts.env });
  return Object.assign(agent, { stateDir, token });
}

/** Starts an agent and waits until its worker is online; resolves with both. */
export async function launchOnlineAgent(opts: Parameters<typeof launchAgent>[0]) {
  const agent = await launchAgent(opts);
  return Object.assign(agent, { worker: await waitForWorker(opts.pool, opts.name) });
}

export async function relaunchAgent(prev: { token: string; stateDir: string }, name: string, slots = 1) {
  return Object.assign(startAgent({ url: cp().url, token: prev.token, name, stateDir: prev.stateDir, slots }), { stateDir: prev.stateDir, token: prev.token });
}

export async function waitForWorker(pool: string, name: string, status = "online", timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const w = (await api(`/v1/workers?pool=${pool}`)).json.workers.find((x: any) => x.name === name);
    if (w?.status === status) return w;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`worker ${name} in ${pool} did not become ${status}`);
}

/** A new project (the admin creates it), for a test's own jobs and secrets. */
export async function newProject(name = uniqueName("proj")) {
  const res = await api("/v1/projects", { method: "POST", json: { name } });
  if (res.status !== 201) throw new Error(`project: ${res.status} ${res.text}`);
  return name;
}

export async function submit(body: Record<string, unknown>) {
  const res = await api("/v1/jobs", { method: "POST", json: body });
  if (res.status !== 201) throw new Error(`submit failed: ${res.status} ${res.text}`);
  return res.json;
}

export function waitForJob(id: string, pred: (j: any) => boolean, timeoutMs = 60_000): Promise<any> {
  return pollUntil(async () => ({ ...(await api(`/v1/jobs/${id}`)).json, spec: undefined }), pred, { timeoutMs, intervalMs: 100, what: `job ${id}` });
}

export const isDone = (j: any) => ["completed", "failed", "canceled"].includes(j.status);

/** Containers (running or not) named after a job; a prestarted one carries no job label, only the name. */
export async function containersOf(jobId: string): Promise<string[]> {
  const out = await runCommand("docker", ["ps", "-aq", "--filter", `name=^/gridx-${jobId}-`]);
  return out.split("\n").filter(Boolean);
}

/** What an agent that is gone for good left: its job's container and its prestarted sandboxes. */
export async function removeContainersOfAgent(name: string) {
  const out = await runCommand("docker", ["ps", "-aq", "--filter", `label=gridx.agent=${name}`]);
  for (const id of out.split("\n").filter(Boolean)) await runCommand("docker", ["rm", "-f", id]).catch(() => undefined);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The real CLI as a child process, as the admin of the shared control plane; resolves when it
 * exits. `env` entries set to undefined are removed; `started` sees the process and its output
 * as it comes.
 */
export function runGridx(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; stdin?: string; started?: (child: ChildProcess, out: () => CliResult) => void } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const env: Record<string, string | undefined> = { ...process.env, GRIDX_URL: cp().url, GRIDX_TOKEN: cp().adminToken, ...opts.env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
    const child = spawn(process.execPath, [cliBin(), ...args], { cwd: opts.cwd, env, stdio: ["pipe", "pipe", "pipe"] });
    const result: CliResult = { code: null, stdout: "", stderr: "" };
    child.stdout!.on("data", (c: Buffer) => (result.stdout += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (result.stderr += c.toString()));
    child.stdin!.end(opts.stdin ?? "");
    opts.started?.(child, () => result);
    child.on("close", (code) => resolve({ ...result, code }));
  });
}
