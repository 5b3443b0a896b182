import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";
import { z } from "zod";
import { CAPS_LIMITS, ImagePattern, Labels } from "../../protocol/index.ts";
import { DEFAULT_PULL_TIMEOUT_S } from "./runner/command-image.ts";
import { LEASE_DEFAULTS } from "./runner/warden.ts";

/** Where the agent looks for a config file when neither --config nor GRIDX_CONFIG names one. */
export const DEFAULT_CONFIG_FILE = "/etc/gridx/agent.json";

const Mib = (fallback: number) => z.coerce.number().int().min(1).max(1024 * 1024).default(fallback);

/** Everything the agent can be told, with its default. */
export const AgentConfig = z.object({
  url: z.string().url("url (--url / GRIDX_URL) must be the control plane's URL, e.g. https://gridx.example.com"),
  token: z.string().min(10, "token (GRIDX_AGENT_TOKEN / --token) is required: issue one with POST /v1/agent-tokens"),
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "letters, digits, '.', '_' or '-', at most 63 characters"),
  slots: z.coerce.number().int().min(1).max(256).default(1),
  /** Python sandboxes kept started ahead of their jobs (at most `slots`); 0 starts every job cold. */
  prestart: z.coerce.number().int().min(0).max(256).default(1),
  /**
   * Jobs taken beyond the slots, prepared while every slot is busy, that start the moment one
   * frees (0: a job is assigned only to a free slot). Never with --once.
   */
  prefetch: z.coerce.number().int().min(0).max(CAPS_LIMITS.prefetch).default(1),
  labels: Labels.default({}),
  stateDir: z.string().min(1).default("/var/lib/gridx"),
  cpus: z.coerce.number().positive().optional(),
  memoryMb: z.coerce.number().int().positive().optional(),
  pythonImage: z.string().min(1).default("gridx/python:latest"),
  /** What a jupyter job runs when it names no image. */
  jupyterImage: z.string().min(1).default("gridx/jupyter:latest"),
  /** A statically linked busybox to relay to jobs' ports; absent: /bin/busybox or /usr/bin/busybox, if static. */
  relayBusybox: z.string().min(1).optional(),
  /** Image patterns (`*` = any characters) `command` jobs may use here; empty trusts the control plane's policy. */
  allowImages: z.array(ImagePattern).default([]),
  /** One image pull, the registry's first answer included, may take this long. */
  pullTimeoutS: z.coerce.number().int().min(1).max(86_400).default(DEFAULT_PULL_TIMEOUT_S),
  /** Seconds between SIGTERM and SIGKILL when a job is stopped. */
  stopGraceS: z.coerce.number().min(0).max(3600).default(10),
  /** Seconds running jobs get to finish when the agent is asked to stop. */
  drainGraceS: z.coerce.number().min(0).max(86_400).default(300),
  /** Seconds without a lease renewal after which the warden stops this agent's job containers; keep it below the control plane's WORKER_TIMEOUT_S. */
  leaseS: z.coerce.number().min(2).max(3600).default(LEASE_DEFAULTS.leaseS),
  tmpfsMb: Mib(64),
  outputCapMb: Mib(1024),
  logCapMb: Mib(100),
  /** Downloaded inputs kept on this machine, least recently used out first. */
  cacheMb: Mib(20 * 1024),
  /** Bare mirrors of repo jobs' repositories, least recently used out first. */
  gitCacheMb: Mib(10 * 1024),
  /** One git fetch may take this long. */
  gitTimeoutS: z.coerce.number().int().min(1).max(86_400).default(900),
  /** Seconds the origin's acceptance of a job's git credential (or of none) lets later jobs with it take cached commits; 0 asks the origin every time. */
  gitAuthTtlS: z.coerce.number().int().min(0).max(86_400).default(300),
  /** One environment image build may take this long. */
  buildTimeoutS: z.coerce.number().int().min(1).max(86_400).default(1800),
  /** CPUs each environment build, and all of this agent's builds together, may use. */
  buildCpus: z.coerce.number().min(0.1).max(1024).default(2),
  /** Memory (no swap) each environment build, and all of this agent's builds together, may use; 6 MiB is Docker's least. */
  buildMemoryMb: z.coerce.number().int().min(6).max(1024 * 1024).default(4096),
  /** Processes (threads included) all of this agent's builds together may run at once. */
  buildPids: z.coerce.number().int().min(16).max(4_194_304).default(1024),
  /** A built environment image (its base included) may be at most this big, else the build fails. */
  buildMaxGb: z.coerce.number().positive().max(10_000).default(20),
  /** Disk budget of built environment images, least recently used out first. */
  imageCacheGb: z.coerce.number().positive().max(100_000).default(50),
  /** Each Docker Engine call must be answered within this (a stop gets its grace on top); a hung engine then fails the job rather than stalling it. */
  dockerTimeoutS: z.coerce.number().int().min(1).max(3600).default(30),
  /** Let repo jobs name local paths (`/srv/repo`, `file://`) as repositories; off, since a job could read any repository on the machine. */
  allowLocalRepos: z.coerce.boolean().default(false),
  /** Never offer jobs egress from this machine, even where iptables could filter it. */
  noEgress: z.coerce.boolean().default(false),
  /** IPv4 ranges egress never reaches, on top of the built-in private, link-local and reserved ones: a LAN on public addresses, the control plane's own. */
  egressDeny: z.array(z.string().regex(/^(\d{1,3}\.){3}\d{1,3}(\/([12]?\d|3[0-2]))?$/, "an IPv4 address or CIDR such as 203.0.113.0/24")).default([]),
  /** Take one job, run it, exit: for throwaway machines. */
  once: z.coerce.boolean().default(false),
  /** PEM file of extra CA certificates to trust (corporate TLS inspection). */
  caFile: z.string().optional(),
  /** Operator probes: user@host[:port] to SSH into; probes are off without it. */
  probeSshTarget: z.string().regex(/^(?:[^@\s]+@)?[^:@\s]+(?::\d+)?$/, "user@host[:port]").optional(),
  probeSshKey: z.string().optional(),
  /** Allowed probe commands: exact, or `prefix *`. */
  probeAllow: z.array(z.string().min(1)).default([]),
  probeTimeoutS: z.coerce.number().int().min(1).max(300).default(30),
  /** Seconds a bundle an upgrade installed has to get its hello accepted before the launcher rolls it back. */
  upgradeConfirmS: z.coerce.number().int().min(5).max(3600).default(120),
});
export type AgentConfig = z.infer<typeof AgentConfig>;
type Key = keyof AgentConfig;

/** Each setting's flag and environment variable; the config file uses the key itself. */
const SOURCES: { key: Key; flag: string; env: string; list?: boolean; bool?: boolean }[] = [
  { key: "url", flag: "url", env: "GRIDX_URL" },
  { key: "token", flag: "token", env: "GRIDX_AGENT_TOKEN" },
  { key: "name", flag: "name", env: "GRIDX_AGENT_NAME" },
  { key: "slots", flag: "slots", env: "GRIDX_SLOTS" },
  { key: "prestart", flag: "prestart", env: "GRIDX_PRESTART" },
  { key: "prefetch", flag: "prefetch", env: "GRIDX_PREFETCH" },
  { key: "labels", flag: "label", env: "GRIDX_LABELS", list: true },
  { key: "stateDir", flag: "state-dir", env: "GRIDX_STATE_DIR" },
  { key: "cpus", flag: "cpus", env: "GRIDX_CPUS" },
  { key: "memoryMb", flag: "memory-mb", env: "GRIDX_MEMORY_MB" },
  { key: "pythonImage", flag: "python-image", env: "GRIDX_PYTHON_IMAGE" },
  { key: "jupyterImage", flag: "jupyter-image", env: "GRIDX_JUPYTER_IMAGE" },
  { key: "relayBusybox", flag: "relay-busybox", env: "GRIDX_RELAY_BUSYBOX" },
  { key: "allowImages", flag: "allow-image", env: "GRIDX_ALLOW_IMAGES", list: true },
  { key: "pullTimeoutS", flag: "pull-timeout", env: "GRIDX_PULL_TIMEOUT_S" },
  { key: "stopGraceS", flag: "stop-grace", env: "GRIDX_STOP_GRACE_S" },
  { key: "drainGraceS", flag: "drain-grace", env: "GRIDX_DRAIN_GRACE_S" },
  { key: "leaseS", flag: "lease-s", env: "GRIDX_LEASE_S" },
  { key: "tmpfsMb", flag: "tmpfs-mb", env: "GRIDX_TMPFS_MB" },
  { key: "outputCapMb", flag: "output-cap-mb", env: "GRIDX_OUTPUT_CAP_MB" },
  { key: "logCapMb", flag: "log-cap-mb", env: "GRIDX_LOG_CAP_MB" },
  { key: "cacheMb", flag: "cache-mb", env: "GRIDX_CACHE_MB" },
  { key: "gitCacheMb", flag: "git-cache-mb", env: "GRIDX_GIT_CACHE_MB" },
  { key: "gitTimeoutS", flag: "git-timeout", env: "GRIDX_GIT_TIMEOUT_S" },
  { key: "gitAuthTtlS", flag: "git-auth-ttl-s", env: "GRIDX_GIT_AUTH_TTL_S" },
  { key: "buildTimeoutS", flag: "build-timeout", env: "GRIDX_BUILD_TIMEOUT_S" },
  { key: "buildCpus", flag: "build-cpus", env: "GRIDX_BUILD_CPUS" },
  { key: "buildMemoryMb", flag: "build-memory-mb", env: "GRIDX_BUILD_MEMORY_MB" },
  { key: "buildPids", flag: "build-pids", env: "GRIDX_BUILD_PIDS" },
  { key: "buildMaxGb", flag: "build-max-gb", env: "GRIDX_BUILD_MAX_GB" },
  { key: "imageCacheGb", flag: "image-cache-gb", env: "GRIDX_IMAGE_CACHE_GB" },
  { key: "dockerTimeoutS", flag: "docker-timeout", env: "GRIDX_DOCKER_TIMEOUT_S" },
  { key: "allowLocalRepos", flag: "allow-local-repos", env: "GRIDX_ALLOW_LOCAL_REPOS", bool: true },
  { key: "noEgress", flag: "no-egress", env: "GRIDX_NO_EGRESS", bool: true },
  { key: "egressDeny", flag: "egress-deny", env: "GRIDX_EGRESS_DENY", list: true },
  { key: "once", flag: "once", env: "GRIDX_ONCE", bool: true },
  { key: "caFile", flag: "ca-file", env: "GRIDX_CA_FILE" },
  { key: "probeSshTarget", flag: "probe-ssh-target", env: "GRIDX_PROBE_SSH_TARGET" },
  { key: "probeSshKey", flag: "probe-ssh-key", env: "GRIDX_PROBE_SSH_KEY" },
  { key: "probeAllow", flag: "probe-allow", env: "GRIDX_PROBE_ALLOW", list: true },
  { key: "probeTimeoutS", flag: "probe-timeout", env: "GRIDX_PROBE_TIMEOUT_S" },
  { key: "upgradeConfirmS", flag: "upgrade-confirm-s", env: "GRIDX_UPGRADE_CONFIRM_S" },
];

function parseLabels(pairs: string[]): Record<string, string> | string {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) return `label ${pair}: expected key=value`;
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

const defaultName = () => os.hostname().replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 63) || "agent";

type Loaded = { ok: true; config: AgentConfig; configFile: string | null } | { ok: false; error: string };

/**
 * Reads the agent's settings with flags over environment over config file (JSON, keyed as
 * AgentConfig), and validates them; the error names the setting and the problem.
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Loaded {
  let flags: Record<string, string | boolean | string[] | undefined>;
  try {
    flags = parseArgs({
      args: argv,
      options: {
        config: { type: "string" },
        ...Object.fromEntries(SOURCES.map((s) => [s.flag, s.bool ? { type: "boolean" as const } : { type: "string" as const, multiple: Boolean(s.list) }])),
      },
      strict: true,
    }).values;
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }

  const explicitFile = (flags.config as string | undefined) ?? env.GRIDX_CONFIG;
  const configFile = explicitFile ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : null);
  let file: Record<string, unknown> = {};
  if (configFile) {
    try {
      file = JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>;
    } catch (err) {
      return { ok: false, error: `config file ${configFile}: ${(err as Error).message}` };
    }
  }

  const merged: Record<string, unknown> = { ...file };
  for (const s of SOURCES) {
    const fromEnv = env[s.env];
    const fromFlag = flags[s.flag];
    let value: unknown = fromFlag ?? (fromEnv === undefined || fromEnv === "" ? undefined : s.list ? fromEnv.split(",").filter(Boolean) : fromEnv);
    if (value === undefined) continue;
    if (s.key === "labels") {
      const labels = parseLabels(value as string[]);
      if (typeof labels === "string") return { ok: false, error: labels };
      value = labels;
    }
    if (s.bool && typeof value === "string") value = value === "1" || value === "true";
    merged[s.key] = value;
  }
  merged.name ??= defaultName();

  const parsed = AgentConfig.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { ok: false, error: `${issue.path.join(".") || "config"}: ${issue.message}` };
  }
  return { ok: true, config: parsed.data, configFile };
}

/** The settings as GRIDX_* environment variables, every one written out (the service's env file). */
export function configToEnv(config: AgentConfig): Record<string, string> {
  const env: Record<string, string> = {};
  for (const s of SOURCES) {
    const value = config[s.key];
    if (value === undefined) continue;
    if (s.key === "labels") env[s.env] = Object.entries(value as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(",");
    else env[s.env] = Array.isArray(value) ? value.join(",") : String(value);
  }
  return env;
}

/** Pulls `--name value` / `--flag` options out of argv, returning what is left. */
export function takeFlags(argv: string[], valued: string[], bare: string[]): { taken: Record<string, string | true>; rest: string[] } {
  const taken: Record<string, string | true> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const name = arg.replace(/^--/, "").split("=")[0]!;
    if (arg.startsWith("--") && bare.includes(name)) taken[name] = true;
    else if (arg.startsWith("--") && valued.includes(name)) taken[name] = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : (argv[++i] ?? "");
    else rest.push(arg);
  }
  return { taken, rest };
}
