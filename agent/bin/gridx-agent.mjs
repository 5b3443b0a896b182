#!/usr/bin/env -S node --max-semi-space-size=1
// The flags are AGENT_NODE_FLAGS in agent/src/service.ts; a test keeps the two alike.
// The installed entry point: runs the bundled agent (`npm run build` makes it; `npm install` runs that).
import { existsSync } from "node:fs";

const bundle = new URL("../dist/gridx-agent.mjs", import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write("gridx-agent: agent/dist/gridx-agent.mjs is missing; run `npm run build` in the gridx folder\n");
  process.exit(1);
}
await import(bundle.href);
