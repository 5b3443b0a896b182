import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

export const SERVICE_NAME = "gridx-agent";

export interface ServicePaths {
  /** Where the unit goes (default /etc/systemd/system). */
  unitDir: string;
  /** Where the environment file with the token goes (default /etc/gridx). */
  configDir: string;
}

export const DEFAULT_PATHS: ServicePaths = { unitDir: "/etc/systemd/system", configDir: "/etc/gridx" };

export interface UnitOptions {
  nodePath: string;
  entry: string;
  envFile: string;
  /** Seconds systemd waits for a drain before it kills the agent. */
  stopTimeoutS: number;
  user?: string;
}

/** The systemd unit: restarts on failure, drains on stop, reads its secrets from a 0600 file. */
export function renderUnit(o: UnitOptions): string {
  return `[Unit]
Description=gridx agent: runs grid jobs in Docker on this machine
Documentation=https://github.com/gridx/gridx#agent
After=network-online.target docker.service
Wants=network-online.target docker.service

[Service]
Type=simple
EnvironmentFile=${o.envFile}
ExecStart=${o.nodePath} ${AGENT_NODE_FLAGS.join(" ")} ${o.entry} run
Restart=always
RestartSec=5
# Exit 75: an upgrade installed a new bundle (or rolled one back); the restart runs the bundle
# the state dir's record names (docs/upgrades.md).
# Exit 3: the control plane refused this agent for good (its protocol or version, a revoked
# token, a name taken by another token); restarting would be refused again, in a loop.
RestartPreventExitStatus=3
# SIGTERM drains: running jobs get GRIDX_DRAIN_GRACE_S, then the agent exits by itself.
KillSignal=SIGTERM
TimeoutStopSec=${o.stopTimeoutS}
StateDirectory=gridx
${o.user ? `User=${o.user}\nSupplementaryGroups=docker\n` : ""}NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ProtectHome=read-only

[Install]
WantedBy=multi-user.target
`;
}

/** KEY="value" lines as systemd's EnvironmentFile reads them. */
export function renderEnvFile(vars: Record<string, string>): string {
  return (
    Object.entries(vars)
      .map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`)
      .join("\n") + "\n"
  );
}

/**
 * V8 flags the agent runs with, wherever it is started (the unit below, the bin's shebang, the
 * local grid). Node 22 sizes the young generation for throughput, 8 MiB and more that an idle,
 * lightly allocating daemon holds resident for nothing; 1 MiB semi-spaces make its scavenges
 * more frequent but tiny, and cut the idle agent's RSS by about 10 MiB on every machine.
 */
export const AGENT_NODE_FLAGS = ["--max-semi-space-size=1"];

const entryPoint = () => join(dirname(fileURLToPath(import.meta.url)), "..", "bin", "gridx-agent.mjs");

export interface InstallOptions {
  paths: ServicePaths;
  /** GRIDX_* settings for the env file; must include GRIDX_URL and GRIDX_AGENT_TOKEN. */
  env: Record<string, string>;
  drainGraceS: number;
  user?: string;
  /** Write the files only (tests, images); do not touch systemd. */
  noStart: boolean;
}

export async function install(o: InstallOptions): Promise<{ unitFile: string; envFile: string }> {
  const envFile = join(o.paths.configDir, "agent.env");
  const unitFile = join(o.paths.unitDir, `${SERVICE_NAME}.service`);
  await mkdir(o.paths.configDir, { recursive: true, mode: 0o755 });
  await mkdir(o.paths.unitDir, { recursive: true });
  // Created 0600 before the token is written, so it is never readable by others.
  await writeFile(envFile, "", { mode: 0o600 });
  await chmod(envFile, 0o600);
  await writeFile(envFile, renderEnvFile(o.env));
  await writeFile(unitFile, renderUnit({ nodePath: process.execPath, entry: entryPoint(), envFile, stopTimeoutS: o.drainGraceS + 30, user: o.user }), { mode: 0o644 });
  if (!o.noStart) {
    await run("systemctl", ["daemon-reload"]);
    await run("systemctl", ["enable", "--now", SERVICE_NAME]);
  }
  return { unitFile, envFile };
}

export async function uninstall(paths: ServicePaths, noStop: boolean): Promise<void> {
  if (!noStop) await run("systemctl", ["disable", "--now", SERVICE_NAME]).catch(() => undefined);
  await rm(join(paths.unitDir, `${SERVICE_NAME}.service`), { force: true });
  await rm(join(paths.configDir, "agent.env"), { force: true });
  if (!noStop) await run("systemctl", ["daemon-reload"]).catch(() => undefined);
}

/** What is installed and whether systemd runs it; never prints the token. */
export async function status(paths: ServicePaths): Promise<string> {
  const unitFile = join(paths.unitDir, `${SERVICE_NAME}.service`);
  const envFile = join(paths.configDir, "agent.env");
  if (!existsSync(unitFile)) return `${SERVICE_NAME}: not installed (no ${unitFile})`;
  const url = /^GRIDX_URL="(.*)"$/m.exec(existsSync(envFile) ? readFileSync(envFile, "utf8") : "")?.[1] ?? "(unknown)";
  let state = "unknown (systemctl unavailable)";
  try {
    state = (await run("systemctl", ["is-active", SERVICE_NAME])).stdout.trim();
  } catch (err) {
    state = ((err as { stdout?: string }).stdout ?? "").trim() || state;
  }
  return `${SERVICE_NAME}: installed (${unitFile}), control plane ${url}, ${state}`;
}
