import { z } from "zod";

/**
 * An agent bundle's version as publishing names it and hello reports it: it is also a folder
 * name on the agent (`<state>/bundles/<version>/`), so no `/` and no leading dot.
 */
export const AgentVersion = z.string().regex(/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,49}$/, "letters, digits, '.', '+', '_' or '-', at most 50 characters, not starting with '.'");
export type AgentVersion = z.infer<typeof AgentVersion>;

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, "lower-case hex SHA-256");

/** Where one worker's upgrade stands, as `GET /v1/pools/:pool/upgrade` shows it. */
export const UPGRADE_STATES = ["pending", "downloading", "draining", "restarting", "done", "rolled_back", "failed"] as const;
export const UpgradeState = z.enum(UPGRADE_STATES);
export type UpgradeState = z.infer<typeof UpgradeState>;

/** The bound on an agent bundle (the control plane's AGENT_BUNDLE_MAX_MB is at most this): 1 GiB. */
export const MAX_BUNDLE_BYTES = 1024 * 1024 * 1024;

/** The coordinator's order to run another bundle: fetch it from `url` (presigned GET), check size and digest, drain, restart into it. */
export const UpgradeOrder = z.object({
  version: AgentVersion,
  sha256: Sha256,
  size: z.number().int().min(1).max(MAX_BUNDLE_BYTES),
  url: z.string().url(),
});
export type UpgradeOrder = z.infer<typeof UpgradeOrder>;

/** What the agent says of an upgrade to `version`; `done` is the coordinator's to decide (a hello with the version), never reported. */
export const UpgradeReport = z.object({
  version: AgentVersion,
  state: z.enum(["downloading", "draining", "restarting", "rolled_back", "failed"]),
  reason: z.string().max(2000).nullable(),
});
export type UpgradeReport = z.infer<typeof UpgradeReport>;

/** A bundle's first line, naming the version built into it (scripts/build-agent.ts writes it). */
export const bundleVersionLine = (version: string) => `// gridx-agent ${version}`;

/** The version a bundle's first line names, or null. */
export function bundleVersionIn(firstLine: string): string | null {
  return /^\/\/ gridx-agent (\S+)$/.exec(firstLine.trim())?.[1] ?? null;
}
