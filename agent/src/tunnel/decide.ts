import type { JobPort, ResetCode, TunnelOpen } from "../../../protocol/index.ts";

/** What the tunnel knows of an attempt this agent runs whose container has started. */
export interface OpenAttempt {
  container: string;
  ports: readonly Pick<JobPort, "port">[];
  /** The pool lets members run processes in it (AttemptSandbox.exec). */
  exec: boolean;
}

/** Streams one agent keeps open at once, whatever the coordinator asks (its own cap is TUNNEL_STREAMS_PER_AGENT, the same by default). */
export const AGENT_STREAM_CAP = 256;

export type Admission = { ok: true; attempt: OpenAttempt } | { ok: false; code: ResetCode; message: string };

/**
 * Whether an `open` may go ahead: the attempt is one this agent runs with its container
 * started, the port is one the job declared (http, ws) or the pool allows exec, and the agent
 * is under its stream cap. Pure.
 */
export function admit(open: TunnelOpen, attempt: OpenAttempt | undefined, openStreams: number, cap = AGENT_STREAM_CAP): Admission {
  if (openStreams >= cap) return { ok: false, code: "limit", message: `this agent has ${cap} streams open, its most` };
  if (!attempt) return { ok: false, code: "refused", message: `attempt ${open.attempt} of job ${open.job_id} is not running on this agent` };
  const target = open.target;
  if (target.type === "exec") {
    return attempt.exec ? { ok: true, attempt } : { ok: false, code: "refused", message: "the pool does not allow exec into its jobs" };
  }
  if (!attempt.ports.some((p) => p.port === target.port)) return { ok: false, code: "refused", message: `port ${target.port} is not one the job declared` };
  return { ok: true, attempt };
}
