/** What the coordinator keeps on each agent socket; it survives hibernation. */
export interface Session {
  tokenId: string;
  /** Set once the agent's hello is accepted. */
  workerId: string | null;
  connectedAt: number;
}

export function sessionOf(ws: WebSocket): Session | null {
  return (ws.deserializeAttachment() as Session | null) ?? null;
}

export function setSession(ws: WebSocket, session: Session): void {
  ws.serializeAttachment(session);
}

/** WebSocket close codes the coordinator uses, so an agent can tell why it was dropped. */
export const CloseCode = {
  protocolVersion: 4001,
  helloTimeout: 4002,
  heartbeatTimeout: 4003,
  replaced: 4004,
} as const;
