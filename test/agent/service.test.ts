import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { AGENT_NODE_FLAGS, renderEnvFile } from "../../agent/src/service.ts";
import { ROOT } from "../../scripts/local-grid.ts";

const run = promisify(execFile);
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  run(process.execPath, [join(ROOT, "agent", "bin", "gridx-agent.mjs"), ...args], { env: { PATH: process.env.PATH, ...env } });

describe("gridx-agent install / status / uninstall", () => {
  it("starts the bin with the same V8 flags as the unit", () => {
    const shebang = readFileSync(join(ROOT, "agent", "bin", "gridx-agent.mjs"), "utf8").split("\n")[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(" ")}`);
  });

  it("writes a unit that systemd accepts and a 0600 env file holding the token", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gridx-svc-"));
    const where = ["--unit-dir", join(dir, "units"), "--config-dir", join(dir, "etc"), "--no-start"];
    const token = "gxa_installtoken_0123456789";
    const { stdout } = await cli(["install", "--url", "https://gridx.example.com", "--token", token, "--name", "lab-3", "--slots", "2", "--label", "zone=lab", ...where]);
    expect(stdout).toMatch(/mode 0600/);

    const unitFile = join(dir, "units", "gridx-agent.service");
    const envFile = join(dir, "etc", "agent.env");
    const unit = readFileSync(unitFile, "utf8");
    expect(unit).not.toContain(token);
    expect(unit).toContain(`EnvironmentFile=${envFile}`);
    expect(unit).toMatch(/^ExecStart=\S+node\S* --max-semi-space-size=1 \S+gridx-agent\.mjs run$/m);
    expect(unit).toContain("Restart=always");
    expect(unit).toContain("TimeoutStopSec=330");

    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    const envText = readFileSync(envFile, "utf8");
    expect(envText).toContain(`GRIDX_AGENT_TOKEN="${token}"`);
    expect(envText).toContain('GRIDX_URL="https://gridx.example.com"');
    expect(envText).toContain('GRIDX_SLOTS="2"');
    expect(envText).toContain('GRIDX_LABELS="zone=lab"');

    // systemd's own checker: syntax, directives, that ExecStart exists.
    const verify = await run("systemd-analyze", ["verify", unitFile]).then(
      (r) => ({ code: 0, out: r.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, out: e.stderr }),
    );
    expect(verify).toEqual({ code: 0, out: "" });

    const status = await cli(["status", ...where]);
    expect(status.stdout).toContain("installed");
    expect(status.stdout).toContain("https://gridx.example.com");
    expect(status.stdout).not.toContain(token);

    await cli(["uninstall", ...where]);
    expect(existsSync(unitFile)).toBe(false);
    expect(existsSync(envFile)).toBe(false);
    expect((await cli(["status", ...where])).stdout).toMatch(/not installed/);
  });

  it("refuses to install without a token, saying what is missing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gridx-svc-"));
    const err = await cli(["install", "--url", "https://x.example", "--unit-dir", dir, "--config-dir", dir, "--no-start"]).catch((e: { code: number; stderr: string }) => e);
    expect(err).toMatchObject({ code: 2, stderr: expect.stringMatching(/token/) });
    expect(existsSync(join(dir, "agent.env"))).toBe(false);
  });

  it("escapes values for systemd's EnvironmentFile", () => {
    expect(renderEnvFile({ A: 'say "hi"\\now', B: "x\ny" })).toBe('A="say \\"hi\\"\\\\now"\nB="x\\ny"\n');
  });
});
