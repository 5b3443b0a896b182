/**
 * Bundles the agent into one ES module, agent/dist/gridx-agent.mjs, the file that ships and
 * runs. Loading the TypeScript sources through a runtime loader costs about 20 MiB of resident
 * memory on every machine of the grid; the bundle runs on plain Node >= 20.
 */
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildSync } from "esbuild";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const AGENT_BUNDLE = join(ROOT, "agent", "dist", "gridx-agent.mjs");

/** Synchronous so a test or script that starts agents can rebuild first without ceremony; it takes well under a second. */
export function buildAgent(): string {
  buildSync({
    entryPoints: [join(ROOT, "agent", "src", "main.ts")],
    outfile: AGENT_BUNDLE,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // ws loads these native speed-ups only if they are installed; they are optional.
    external: ["bufferutil", "utf-8-validate"],
    // CommonJS dependencies call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as __gridxRequire } from 'node:module'; const require = __gridxRequire(import.meta.url);" },
    sourcemap: "linked",
    logLevel: "warning",
  });
  return AGENT_BUNDLE;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.stdout.write(`built ${buildAgent()}\n`);
}
