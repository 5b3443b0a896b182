import { createHash } from "node:crypto";

/**
 * A stable id of one agent installation: a hash of the control plane's URL, the agent's token
 * and its worker name, which together are the worker the control plane binds to that token.
 * Its containers carry it (`LABELS.instance`), so cleanup and the lease warden touch only this
 * agent's own, even where two agents on one Docker host share a name (in two pools) or a token
 * (two workers). A new token makes a new installation; the old one's containers stop by their
 * lease.
 */
export function agentInstance(url: string, token: string, name: string): string {
  return createHash("sha256").update(`${new URL(url).origin}\n${token}\n${name}`).digest("hex").slice(0, 32);
}
