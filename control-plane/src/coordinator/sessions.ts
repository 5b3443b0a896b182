/** What the coordinator keeps on each agent socket; it survives hibernation. */
export interface Session {
  tokenId: string;
  /** Set once the agent's hello is accepted. */
  workerId: string | null;
  connectedAt: number;
  /** When its hello came: from then on a wait for the hello to be recorded is the coordinator's, not the agent's. */
  helloAt?: number;
  /** The agent reads batched frames (it said so in its hello). */
  batchFrames?: boolean;
}

/*
 * The attachment is the durable copy, read back after hibernation; this cache spares a
 * deserialization each time a socket is looked at, which the coordinator does for every
 * socket on every message it sends.
 */
const cached = new WeakMap<WebSocket, Session | null>();

export function sessionOf(ws: WebSocket): Session | null {
  let session = cached.get(ws);
  if (session === undefined) cached.set(ws, (session = (ws.deserializeAttachment() as Session | null) ?? null));
  return session;
}

export function setSession(ws: WebSocket, session: Session): void {
  ws.serializeAttachment(session);
  cached.set(ws, session);
}

export { CloseCode } from "../../../protocol/index.ts";
