import { createHash } from "node:crypto";

/**
 * A stable id of one agent installation: a hash of the control plane's URL and the agent's
 * token, the credential its worker is bound to. Its containers carry it (`LABELS.instance`), so
 * cleanup and the lease warden touch only this agent's own, even where two agents on one
 * Docker host share a display name. A new token makes a new installation; the old one's
 * containers stop by their lease.
 */
export function agentInstance(url: string, token: string): string {
  return createHash("sha256").update(`${new URL(url).origin}\n${token}`).digest("hex").slice(0, 32);
}
