/**
 * Bundles the CLI into one file, cli/dist/gridx.cjs, which cli/bin/gridx.cjs runs on plain
 * Node >= 20: no TypeScript loader at run time (tsx cost ~180 ms a start).
 *
 * CommonJS, not an ES module, because a start is mostly module loading: an ES module's
 * `import "node:fs"` builds the module's ESM facade (every getter of fs evaluated, streams
 * loaded with them), where `require` does not, and esbuild turns each `await import()` of the
 * sources into a module that runs only when first called, its `require`s of Node's modules
 * included. So `gridx --help` pays for argument parsing and the help text, and the transfer code
 * (node:https, node:crypto, streams) loads only for the commands that move bytes.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { bundle, ROOT } from "./build-agent.ts";

const CLI_BUNDLE = join(ROOT, "cli", "dist", "gridx.cjs");
const CLI_BIN = join(ROOT, "cli", "bin", "gridx.cjs");

export function buildCli(): string {
  const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
  return bundle(join(ROOT, "cli", "src", "main.ts"), CLI_BUNDLE, {
    format: "cjs",
    define: { GRIDX_VERSION: JSON.stringify(version) },
    // Hono's client builds a Headers for every call, and Node's loads undici (~60 ms) when first touched.
    inject: [join(ROOT, "cli", "src", "headers.ts")],
  });
}

let built = false;
/** The CLI's bin, its bundle built from the current sources once per process (tests run it as a user would). */
export function cliBin(): string {
  if (!built) buildCli();
  built = true;
  return CLI_BIN;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.stdout.write(`built ${buildCli()}\n`);
}
