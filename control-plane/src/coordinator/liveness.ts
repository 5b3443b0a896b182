import type { Session } from "./sessions.ts";

export interface SocketState {
  session: Session;
  /** The last heartbeat the runtime answered for this socket, if any. */
  lastHeartbeat: number | null;
}

export type SocketVerdict = { kind: "hello_timeout" } | { kind: "silent"; lastSeen: number } | { kind: "alive"; lastSeen: number };

/** Decides what to do with one socket at a sweep: pure, so the timing rules test without I/O. */
export function judgeSocket(s: SocketState, now: number, limits: { helloTimeoutMs: number; workerTimeoutMs: number }): SocketVerdict {
  if (s.session.workerId === null) {
    // A hello waiting its turn (a reconnect storm) is not a socket that never said hello.
    if (s.session.helloAt !== undefined) return { kind: "alive", lastSeen: s.session.helloAt };
    return now - s.session.connectedAt > limits.helloTimeoutMs ? { kind: "hello_timeout" } : { kind: "alive", lastSeen: s.session.connectedAt };
  }
  const lastSeen = Math.max(s.session.connectedAt, s.lastHeartbeat ?? 0);
  return now - lastSeen > limits.workerTimeoutMs ? { kind: "silent", lastSeen } : { kind: "alive", lastSeen };
}

/** A gap between sweeps this many sweep intervals long means the coordinator itself was down. */
export const OUTAGE_SWEEPS = 3;

export interface SweepClock {
  now: number;
  /** When the previous sweep ran, if ever. */
  lastSweepAt: number | null;
  /** Until when workers are not judged, after an outage of the coordinator. */
  graceUntil: number | null;
  sweepMs: number;
  workerTimeoutMs: number;
}

/**
 * Whether this sweep may declare workers lost. Silence that the coordinator's own outage caused
 * is not the workers' fault: after one, every worker gets a full timeout to reconnect before
 * its jobs are requeued or its deadlines enforced.
 */
export function judgement(c: SweepClock): { judge: boolean; graceUntil: number | null } {
  const outage = c.lastSweepAt !== null && c.now - c.lastSweepAt > OUTAGE_SWEEPS * c.sweepMs;
  const graceUntil = outage ? c.now + c.workerTimeoutMs : c.graceUntil;
  return { judge: graceUntil === null || c.now >= graceUntil, graceUntil };
}
