import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RESTART_EXIT, stateFile, type BundleState } from "../../agent/bin/bundle-choice.mjs";

const BIN = new URL("../../agent/bin/", import.meta.url);

/**
 * The real launcher in a folder of its own, its shipped bundle a stand-in that prints which it
 * is; installed bundles are stand-ins too: one that confirms itself as a connected agent
 * would, one that crashes, one that never connects.
 */
function installation() {
  const root = mkdtempSync(join(tmpdir(), "gridx-launcher-"));
  mkdirSync(join(root, "bin"));
  mkdirSync(join(root, "dist"));
  for (const f of ["gridx-agent.mjs", "bundle-choice.mjs"]) copyFileSync(new URL(f, BIN), join(root, "bin", f));
  writeFileSync(join(root, "dist", "gridx-agent.mjs"), "process.stdout.write('shipped\\n');\n");
  const stateDir = join(root, "state");
  const choice = new URL("bundle-choice.mjs", BIN).href;
  const bundles = {
    confirms: `import { readFileSync, writeFileSync } from "node:fs"; import { confirmed, stateFile } from ${JSON.stringify(choice)};
const f = stateFile(${JSON.stringify(stateDir)}); writeFileSync(f, JSON.stringify(confirmed(JSON.parse(readFileSync(f, "utf8")), "2.0.0"))); process.stdout.write("new\\n");`,
    crashes: `throw new Error("broken bundle");`,
    hangs: `setInterval(() => undefined, 1000);`,
    exits3: `process.exit(3);`,
  };
  const install = (kind: keyof typeof bundles, confirmS = 30) => {
    const path = join(stateDir, "bundles", "2.0.0", "gridx-agent.mjs");
    mkdirSync(join(stateDir, "bundles", "2.0.0"), { recursive: true });
    writeFileSync(path, bundles[kind]);
    const state: BundleState = { current: null, previous: null, pending: { version: "2.0.0", path, confirm_s: confirmS, started_at: null }, rolled_back: null };
    writeFileSync(stateFile(stateDir), JSON.stringify(state));
  };
  const launch = () => spawnSync(process.execPath, [join(root, "bin", "gridx-agent.mjs"), "run", "--state-dir", stateDir], { encoding: "utf8", timeout: 30_000 });
  const state = () => JSON.parse(readFileSync(stateFile(stateDir), "utf8")) as BundleState;
  return { install, launch, state, stateDir };
}

describe("the launcher", () => {
  it("runs the shipped bundle when nothing is installed", () => {
    const { launch } = installation();
    const run = launch();
    expect(run.stdout).toBe("shipped\n");
    expect(run.status).toBe(0);
  });

  it("keeps a pending bundle that connected: it runs at every start after", () => {
    const { install, launch, state } = installation();
    install("confirms");
    expect(launch().stdout).toBe("new\n");
    expect(state()).toMatchObject({ current: { version: "2.0.0" }, pending: null, rolled_back: null });
    expect(launch().stdout).toBe("new\n");
  });

  it.each([
    ["crashes", "exited with status 1"],
    ["exits3", "exited with status 3"],
  ] as const)("rolls back a bundle that %s before connecting, and exits for a restart (never 3, which the unit does not restart)", (kind, reason) => {
    const { install, launch, state } = installation();
    install(kind);
    const run = launch();
    expect(run.status).toBe(RESTART_EXIT);
    expect(state()).toMatchObject({ pending: null, current: null, rolled_back: { version: "2.0.0", reported: false } });
    expect(state().rolled_back?.reason).toContain(reason);
    expect(launch().stdout).toBe("shipped\n");
  });

  it("rolls back a bundle that does not connect within its confirm bound", () => {
    const { install, launch, state } = installation();
    install("hangs", 1);
    const run = launch();
    expect(run.status).toBe(RESTART_EXIT);
    expect(state().rolled_back?.reason).toContain("no hello accepted within 1 s");
  });

  it("starts, running the current bundle and trying nothing, when it cannot write its record (a full or read-only disk)", () => {
    const { install, launch, state, stateDir } = installation();
    install("hangs", 1);
    // The record is written through a temporary file beside it: a folder there makes the write fail.
    mkdirSync(`${stateFile(stateDir)}.tmp`);
    const run = launch();
    expect(run.stdout).toBe("shipped\n");
    expect(run.status).toBe(0);
    expect(run.stderr).toContain("trying nothing new");
    expect(state().pending).toMatchObject({ version: "2.0.0", started_at: null });
  });
});
