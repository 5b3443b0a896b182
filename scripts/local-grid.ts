/**
 * Starts the pieces of a local grid as real processes: the control plane on `wrangler dev`
 * (workerd with D1, the Durable Object and R2) and agents on the real Docker engine. Used by
 * `npm start`, the end-to-end tests and the benchmarks, so all three run the same way.
 */
import { randomBytes } from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AGENT_NODE_FLAGS } from "../agent/src/service.ts";
import { buildAgent } from "./build-agent.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const BIN = join(ROOT, "node_modules", ".bin");

/**
 * A port nothing listens on, for a server started next. Taken below Linux's ephemeral range
 * (32768 and up): a port the kernel handed out and took back would be handed out again, and
 * workerd binds several `:0` sockets of its own, so a wrangler dev starting meanwhile could take
 * it first (seen: "Address already in use" with a dozen test servers starting at once).
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 100; tries++) {
    const port = FREE_PORT_FROM + Math.floor(Math.random() * (FREE_PORT_TO - FREE_PORT_FROM));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port between ${FREE_PORT_FROM} and ${FREE_PORT_TO} in 100 tries`);
}

const FREE_PORT_FROM = 20_000;
const FREE_PORT_TO = 32_000;

async function bindable(port: number): Promise<boolean> {
  const server = createServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => resolve(true));
  });
  if (bound) {
    server.close();
    await once(server, "close");
  }
  return bound;
}

/** Runs a command to completion; rejects with its output when it fails. */
export async function runCommand(cmd: string, args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<string> {
  const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (out += c.toString()));
  const [code] = (await once(child, "close")) as [number | null];
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${code}:\n${out}`);
  return out;
}

export const wranglerEnv = (): Record<string, string | undefined> => ({
  // wrangler needs Node >= 22, which the `node` devDependency puts first on PATH.
  PATH: `${BIN}:${process.env.PATH ?? ""}`,
  WRANGLER_SEND_METRICS: "false",
  CI: process.env.CI ?? "",
});

export interface ControlPlane {
  url: string;
  adminToken: string;
  process: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  port?: number;
  /** Where D1, Durable Object and R2 state live; `.wrangler/state` when omitted. */
  persistTo?: string;
  adminToken: string;
  /**
   * A dotenv file holding GRIDX_ADMIN_TOKEN (mode 0600). Secrets go to wrangler through a
   * file, never its argv, where any local user could read them.
   */
  secretsFile: string;
  /** Overrides of wrangler vars (timeouts and limits); not for secrets. */
  vars?: Record<string, string>;
  /** Print wrangler's output as it comes. */
  inheritOutput?: boolean;
}

export async function applyMigrations(persistTo?: string): Promise<void> {
  await runCommand(join(BIN, "wrangler"), ["d1", "migrations", "apply", "DB", "--local", ...(persistTo ? ["--persist-to", persistTo] : [])], { env: wranglerEnv() });
}

export async function waitForHealth(url: string, timeoutMs: number, proc?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) throw new Error(`the control plane exited with ${proc.exitCode} before it was healthy`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the control plane at ${url} was not healthy within ${timeoutMs} ms`);
}

/** Keeps the last 200 kB a process printed (and echoes it, if asked). */
function collectOutput(proc: ChildProcess, echo = false): () => string {
  let output = "";
  const collect = (c: Buffer) => {
    output = (output + c.toString()).slice(-200_000);
    if (echo) process.stderr.write(c);
  };
  proc.stdout!.on("data", collect);
  proc.stderr!.on("data", collect);
  return () => output;
}

async function stopProcess(proc: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, "exit");
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Applies migrations, then runs `wrangler dev` until it answers /health. */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  await applyMigrations(opts.persistTo);
  const port = opts.port ?? (await freePort());
  // Presigned URLs point at wrangler dev's own S3 endpoint for the local bucket; webhooks may
  // reach a receiver on this machine.
  const vars = { S3_ENDPOINT: `http://127.0.0.1:${port}/cdn-cgi/local/r2/s3`, WEBHOOK_ALLOW_TARGETS: "loopback", ...opts.vars };
  const args = [
    "dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(await freePort()),
    "--env-file",
    opts.secretsFile,
    ...(opts.persistTo ? ["--persist-to", opts.persistTo] : []),
    ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];
  const proc = spawn(join(BIN, "wrangler"), args, { cwd: ROOT, env: { ...process.env, ...wranglerEnv() }, stdio: ["ignore", "pipe", "pipe"] });
  const output = collectOutput(proc, opts.inheritOutput);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(url, 60_000, proc);
  } catch (err) {
    await stopProcess(proc);
    throw new Error(`${(err as Error).message}\n${output()}`, { cause: err });
  }
  return { url, adminToken: opts.adminToken, process: proc, output, stop: () => stopProcess(proc) };
}

/**
 * The keys wrangler dev's local R2 S3 endpoint accepts (wrangler.toml `local_dev`); local only,
 * production keys are the Worker's secrets.
 */
export const LOCAL_S3_SECRETS = { S3_ACCESS_KEY_ID: "gridx-local-key", S3_SECRET_ACCESS_KEY: "gridx-local-secret" };

/** A fresh key for sealing project secrets (the Worker secret SECRETS_KEY). */
export const newSecretsKey = () => randomBytes(32).toString("base64");

/** Writes a secrets file for `startControlPlane`, readable by this user only. */
export function writeSecretsFile(path: string, adminToken: string): string {
  const lines = Object.entries({ GRIDX_ADMIN_TOKEN: adminToken, SECRETS_KEY: newSecretsKey(), ...LOCAL_S3_SECRETS }).map(([k, v]) => `${k}="${v}"`);
  writeFileSync(path, lines.join("\n") + "\n", { mode: 0o600 });
  return path;
}

export async function issueAgentToken(cp: { url: string; adminToken: string }, name: string, pool = "default"): Promise<string> {
  const res = await fetch(`${cp.url}/v1/agent-tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${cp.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name, pool }),
  });
  if (res.status !== 201) throw new Error(`issuing an agent token failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

export interface AgentProcess {
  process: ChildProcess;
  output(): string;
  /** SIGTERM (drain), or SIGKILL to simulate a crash. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface AgentProcessOptions {
  url: string;
  token: string;
  name: string;
  stateDir: string;
  slots?: number;
  labels?: Record<string, string>;
  extraArgs?: string[];
  /** More environment for the agent (say, DOCKER_HOST for another engine); the token is set by startAgent. */
  env?: Record<string, string>;
  inheritOutput?: boolean;
}

let bundled: string | null = null;
/** The agent as it ships, bundled from the current sources once per process. */
function agentBundle(): string {
  return (bundled ??= buildAgent());
}

/** Starts an agent the way an operator would; the token travels in the environment, not argv. */
export function startAgent(opts: AgentProcessOptions): AgentProcess {
  const args = [
    ...AGENT_NODE_FLAGS,
    agentBundle(),
    "--url",
    opts.url,
    "--name",
    opts.name,
    "--state-dir",
    opts.stateDir,
    "--slots",
    String(opts.slots ?? 1),
    ...Object.entries(opts.labels ?? {}).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
    ...(opts.extraArgs ?? []),
  ];
  const proc = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...opts.env, GRIDX_AGENT_TOKEN: opts.token }, stdio: ["ignore", "pipe", "pipe"] });
  const output = collectOutput(proc, opts.inheritOutput);
  return { process: proc, output, stop: (signal = "SIGTERM") => stopProcess(proc, signal, 60_000) };
}

/**
 * Builds the runner images. Always: Docker's layer cache makes an unchanged image a second's
 * work, and an image left from older sources (say, a previous entrypoint) would be wrong.
 */
export async function ensureRunnerImages(): Promise<void> {
  await runCommand("bash", [join(ROOT, "runner-images", "build.sh")]);
}
