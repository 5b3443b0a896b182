import { readFileSync } from "node:fs";

declare const GRIDX_BUILD_VERSION: string | undefined;

/**
 * The agent's version: stamped into the bundle when it is built (scripts/build-agent.ts), since
 * an installed upgrade runs from the state dir, far from any package.json; run from source, the package's.
 */
export const AGENT_VERSION: string =
  typeof GRIDX_BUILD_VERSION === "string" ? GRIDX_BUILD_VERSION : (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
