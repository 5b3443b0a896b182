/**
 * Bundles the agent into one ES module, agent/dist/gridx-agent.mjs, the file that ships and
 * runs. Loading the TypeScript sources through a runtime loader costs about 20 MiB of resident
 * memory on every machine of the grid; the bundle runs on plain Node >= 20.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildSync, type BuildOptions } from "esbuild";
import { bundleVersionLine } from "../protocol/upgrade.ts";

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

const packageVersion = () => (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

/**
 * Synchronous so a test or script that starts agents can rebuild first without ceremony; it
 * takes well under a second. The bundle carries its version (`version`, the package's unless
 * given): an upgrade installs it far from package.json, and tests build two of them.
 */
export function buildAgent(opts: { version?: string; outfile?: string } = {}): string {
  const version = opts.version ?? packageVersion();
  return bundle(join(ROOT, "agent", "src", "main.ts"), opts.outfile ?? AGENT_BUNDLE, {
    // The first line names the version, so `gridx agent publish` can refuse a bundle published
    // under another one (its agents would never say hello with the version they were sent).
    // CommonJS dependencies call require(); an ES module has none of its own.
    banner: { js: `${bundleVersionLine(version)}\nimport { createRequire as __gridxRequire } from 'node:module'; const require = __gridxRequire(import.meta.url);` },
    define: { GRIDX_BUILD_VERSION: JSON.stringify(version) },
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { version: { type: "string" }, outfile: { type: "string" } } });
  process.stdout.write(`built ${buildAgent(values)}\n`);
}
