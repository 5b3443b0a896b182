/**
 * Bundles the agent into one ES module, agent/dist/gridx-agent.mjs, the file that ships and
 * runs. Loading the TypeScript sources through a runtime loader costs about 20 MiB of resident
 * memory on every machine of the grid; the bundle runs on plain Node >= 20.
 */
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildSync, type BuildOptions } from "esbuild";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const AGENT_BUNDLE = join(ROOT, "agent", "dist", "gridx-agent.mjs");

/**
 * One Node program as one file, with the settings every gridx bundle shares; `extra` adds or
 * overrides (the CLI's format and constants).
 */
export function bundle(entry: string, outfile: string, extra: BuildOptions = {}): string {
  buildSync({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // ws loads these native speed-ups only if they are installed; they are optional.
    external: ["bufferutil", "utf-8-validate"],
    sourcemap: "linked",
    logLevel: "warning",
    ...extra,
  });
  return outfile;
}

/** Synchronous so a test or script that starts agents can rebuild first without ceremony; it takes well under a second. */
export function buildAgent(): string {
  return bundle(join(ROOT, "agent", "src", "main.ts"), AGENT_BUNDLE, {
    // CommonJS dependencies call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as __gridxRequire } from 'node:module'; const require = __gridxRequire(import.meta.url);" },
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.stdout.write(`built ${buildAgent()}\n`);
}
