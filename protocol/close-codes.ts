/** WebSocket close codes the coordinator uses, so an agent can tell why it was dropped. */
export const CloseCode = {
  protocolVersion: 4001,
  helloTimeout: 4002,
  heartbeatTimeout: 4003,
  replaced: 4004,
  /** The worker name belongs to another agent token: reconnecting with this one cannot help. */
  identity: 4005,
  /** The agent token was revoked: only a new token helps. */
  revoked: 4006,
  /** The agent is older than the control plane's minimum (AGENT_MIN_VERSION): only an upgrade helps; an error frame before it says what to install. */
  outdated: 4007,
} as const;

/** Closes after which an agent stops instead of redialing: the same dial would be refused again. */
export const FATAL_CLOSES: readonly number[] = [CloseCode.protocolVersion, CloseCode.identity, CloseCode.revoked, CloseCode.outdated];
