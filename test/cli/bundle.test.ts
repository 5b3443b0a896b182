import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { mainHelp } from "../../cli/src/cli.ts";
import { COMMANDS } from "../../cli/src/registry.ts";
import { cliBin } from "../../scripts/build-cli.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string; bin: Record<string, string>; scripts: Record<string, string> };

/** The bin as a user's shell runs it: plain Node, no loader flags; built from the current sources. */
const gridx = (args: string[], nodeArgs: string[] = []) => spawnSync(process.execPath, [...nodeArgs, cliBin(), ...args], {
    encoding: "utf8",
    env: { ...process.env, GRIDX_URL: "", GRIDX_TOKEN: "", GRIDX_PROJECT: "", XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "gridx-bundle-config-")) },
  });

describe("the CLI bundle", () => {
  it("is what package.json's bin runs, and `npm install` builds it (prepare)", () => {
    expect(pkg.bin.gridx).toBe("cli/bin/gridx.cjs");
    expect(pkg.scripts.prepare).toBe("npm run build");
    expect(pkg.scripts.build).toContain("scripts/build-cli.ts");
    expect(readFileSync(cliBin(), "utf8")).not.toMatch(/tsx/);
  });

  it("prints the help and the version from package.json", () => {
    const help = gridx(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toBe(mainHelp(COMMANDS));
    expect(gridx(["--version"]).stdout).toBe(`gridx ${pkg.version}\n`);
  });

  it("exits with the CLI's codes: 2 for bad usage, 3 when not logged in", () => {
    const unknown = gridx(["frobnicate"]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^gridx: unknown command "frobnicate"/);
    expect(gridx(["list"]).status).toBe(3);
  });

  it("loads no transfer code for --help: node:https, node:http and node:crypto stay unloaded", () => {
    const dir = mkdtempSync(join(tmpdir(), "gridx-bundle-"));
    const probe = join(dir, "probe.cjs");
    const out = join(dir, "modules.json");
    writeFileSync(probe, `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(out)}, JSON.stringify(process.moduleLoadList)));\n`);
    expect(gridx(["--help"], ["--require", probe]).status).toBe(0);
    const loaded = JSON.parse(readFileSync(out, "utf8")) as string[];
    expect(loaded).toContain("NativeModule util");
    expect(loaded.filter((m) => /^NativeModule (https?|crypto)$/.test(m))).toEqual([]);
  });
});
