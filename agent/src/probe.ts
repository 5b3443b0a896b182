import { spawn } from "node:child_process";
import type { AgentToCoordinator, MessageOf } from "../../protocol/index.ts";
import { PROBE_LIMITS } from "../../protocol/index.ts";

export type ProbeResult = Omit<MessageOf<AgentToCoordinator, "probe_result">["payload"], "probe_id">;

/** Where and what an operator may probe on this machine; absent means probes are off. */
export interface ProbeConfig {
  /** user@host[:port] — the WSL host, or this machine itself. */
  target: string;
  keyFile?: string;
  /** Exact commands, or prefixes written as `cmd *`. Nothing else runs. */
  allow: string[];
  /** The longest a probe may run here, whatever the operator asks. */
  maxTimeoutS: number;
  knownHostsFile: string;
}

/** Whether a command is on the allowlist: an exact entry, or an entry `prefix *` it starts with. */
export function isAllowed(command: string, allow: readonly string[]): boolean {
  // Shell control characters would turn an allowed prefix into anything at all.
  if (/[;&|`$<>(){}\\\n\r]/.test(command)) return false;
  return allow.some((entry) => (entry.endsWith(" *") ? command.startsWith(entry.slice(0, -1)) && command.length > entry.length - 1 : command === entry));
}

/** The ssh invocation for a probe: key only, no prompts, no agent or port forwarding. */
export function sshArgs(cfg: ProbeConfig, command: string): string[] {
  const m = /^(?:([^@]+)@)?([^:]+)(?::(\d+))?$/.exec(cfg.target);
  if (!m) throw new Error(`probe target ${cfg.target} is not user@host[:port]`);
  const [, user, host, port] = m;
  return [
    ...(cfg.keyFile ? ["-i", cfg.keyFile] : []),
    ...(port ? ["-p", port] : []),
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=accept-new",
    "-o", `UserKnownHostsFile=${cfg.knownHostsFile}`,
    "-o", "ConnectTimeout=10",
    "-o", "LogLevel=ERROR",
    "-o", "ForwardAgent=no",
    "-o", "ClearAllForwardings=yes",
    "-T",
    user ? `${user}@${host}` : host!,
    "--",
    command,
  ];
}

/** Runs one probe over SSH, bounded in time and output. Never throws. */
export function runProbe(cfg: ProbeConfig | null, command: string, requestedTimeoutS: number): Promise<ProbeResult> {
  const refuse = (error: string): Promise<ProbeResult> => Promise.resolve({ status: "refused", exit_code: null, output: "", truncated: false, error });
  if (!cfg) return refuse("probes are not configured on this worker (--probe-ssh-target)");
  if (!isAllowed(command, cfg.allow)) return refuse(`"${command}" is not on this worker's probe allowlist`);
  const timeoutS = Math.min(requestedTimeoutS, cfg.maxTimeoutS);
  return new Promise((resolve) => {
    const child = spawn("ssh", sshArgs(cfg, command), { stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let bytes = 0;
    let truncated = false;
    const take = (c: Buffer) => {
      if (bytes >= PROBE_LIMITS.output_bytes) {
        truncated = true;
        return;
      }
      const room = PROBE_LIMITS.output_bytes - bytes;
      if (c.length > room) truncated = true;
      chunks.push(c.subarray(0, room));
      bytes += Math.min(c.length, room);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutS * 1000);
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve({ status: "failed", exit_code: null, output: "", truncated: false, error: `could not run ssh: ${err.message}` });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const output = Buffer.concat(chunks).toString("utf8");
      if (timedOut) resolve({ status: "timeout", exit_code: null, output, truncated, error: `stopped after ${timeoutS}s` });
      // ssh itself exits 255 when it cannot connect or authenticate.
      else if (code === 255) resolve({ status: "failed", exit_code: code, output, truncated, error: "ssh could not reach or log in to the probe target" });
      else resolve({ status: "completed", exit_code: code, output, truncated, error: null });
    });
  });
}
