import type { Session } from "./sessions.ts";

export interface SocketState {
  session: Session;
  /** The last heartbeat the runtime answered for this socket, if any. */
  lastHeartbeat: number | null;
}

export type SocketVerdict = { kind: "hello_timeout" } | { kind: "silent" } | { kind: "alive"; lastSeen: number };

/** Decides what to do with one socket at a sweep: pure, so the timing rules test without I/O. */
export function judgeSocket(s: SocketState, now: number, limits: { helloTimeoutMs: number; workerTimeoutMs: number }): SocketVerdict {
  if (s.session.workerId === null) {
    return now - s.session.connectedAt > limits.helloTimeoutMs ? { kind: "hello_timeout" } : { kind: "alive", lastSeen: s.session.connectedAt };
  }
  const lastSeen = Math.max(s.session.connectedAt, s.lastHeartbeat ?? 0);
  return now - lastSeen > limits.workerTimeoutMs ? { kind: "silent" } : { kind: "alive", lastSeen };
}
