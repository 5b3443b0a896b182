import os from "node:os";
import { parseArgs } from "node:util";
import { z } from "zod";
import { Labels } from "../../protocol/index.ts";

/** Everything the agent can be told, with its default. Flags win over environment variables. */
export const AgentConfig = z.object({
  url: z.string().url("GRIDX_URL / --url must be the control plane's URL, e.g. https://gridx.example.com"),
  token: z.string().min(10, "GRIDX_AGENT_TOKEN / --token is required: issue one with POST /v1/agent-tokens"),
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "--name: letters, digits, '.', '_' or '-', at most 63 characters"),
  slots: z.coerce.number().int().min(1).max(256).default(1),
  labels: Labels.default({}),
  stateDir: z.string().min(1).default("/var/lib/gridx"),
  cpus: z.coerce.number().positive().optional(),
  memoryMb: z.coerce.number().int().positive().optional(),
  pythonImage: z.string().min(1).default("gridx/python:latest"),
  /** Seconds between SIGTERM and SIGKILL when a job is stopped. */
  stopGraceS: z.coerce.number().min(0).max(3600).default(10),
  /** Seconds running jobs get to finish when the agent is asked to stop. */
  drainGraceS: z.coerce.number().min(0).max(86_400).default(300),
  tmpfsMb: z.coerce.number().int().min(1).max(65_536).default(64),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

function parseLabels(pairs: string[]): Record<string, string> | string {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) return `--label ${pair}: expected key=value`;
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

const defaultName = () => os.hostname().replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 63) || "agent";

/** Reads flags and environment into a validated config, or the message saying what is wrong. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): { ok: true; config: AgentConfig } | { ok: false; error: string } {
  let flags;
  try {
    flags = parseArgs({
      args: argv,
      options: {
        url: { type: "string" },
        token: { type: "string" },
        name: { type: "string" },
        slots: { type: "string" },
        label: { type: "string", multiple: true },
        "state-dir": { type: "string" },
        cpus: { type: "string" },
        "memory-mb": { type: "string" },
        "python-image": { type: "string" },
        "stop-grace": { type: "string" },
        "drain-grace": { type: "string" },
        "tmpfs-mb": { type: "string" },
      },
      strict: true,
    }).values;
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  const labelPairs = flags.label ?? (env.GRIDX_LABELS ? env.GRIDX_LABELS.split(",").filter(Boolean) : []);
  const labels = parseLabels(labelPairs);
  if (typeof labels === "string") return { ok: false, error: labels };
  const parsed = AgentConfig.safeParse({
    url: flags.url ?? env.GRIDX_URL,
    token: flags.token ?? env.GRIDX_AGENT_TOKEN,
    name: flags.name ?? env.GRIDX_AGENT_NAME ?? defaultName(),
    slots: flags.slots ?? env.GRIDX_SLOTS,
    labels,
    stateDir: flags["state-dir"] ?? env.GRIDX_STATE_DIR,
    cpus: flags.cpus ?? env.GRIDX_CPUS,
    memoryMb: flags["memory-mb"] ?? env.GRIDX_MEMORY_MB,
    pythonImage: flags["python-image"] ?? env.GRIDX_PYTHON_IMAGE,
    stopGraceS: flags["stop-grace"] ?? env.GRIDX_STOP_GRACE_S,
    drainGraceS: flags["drain-grace"] ?? env.GRIDX_DRAIN_GRACE_S,
    tmpfsMb: flags["tmpfs-mb"] ?? env.GRIDX_TMPFS_MB,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { ok: false, error: `${issue.path.join(".") || "config"}: ${issue.message}` };
  }
  return { ok: true, config: parsed.data };
}
