import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { commandHelp, dispatch } from "../../cli/src/cli.ts";
import { jobCommands } from "../../cli/src/commands/jobs.ts";
import { UsageError } from "../../cli/src/errors.ts";
import { COMMANDS } from "../../cli/src/registry.ts";
import { fakeIo } from "./fake-io.ts";
const ROOT = join(import.meta.dirname, "..", "..");

describe("gridx commands", () => {
  it("are the ones the issues ask for, plus datasets, logout and config", () => {
    expect(COMMANDS.map((c) => c.name).sort()).toEqual(
      [
        ...["run", "submit", "status", "list", "logs", "cancel", "artifacts ls", "artifacts get", "workers", "drain", "undrain"],
        ...["projects", "projects show", "projects create", "projects set", "members ls", "members add", "members rm"],
        ...["whoami", "users create", "users ls", "tokens create", "tokens ls", "tokens revoke"],
        ...["datasets upload", "datasets download", "datasets ls", "login", "logout", "config set", "config unset", "config show"],
        ...["rerun", "array", "array cancel"],
        ...["schedules list", "schedules create", "schedules show", "schedules pause", "schedules resume", "schedules delete", "schedules runs"],
        ...["jupyter", "open", "exec", "shell"],
        ...["broadcast", "broadcast show"],
        ...["agent publish", "upgrade", "upgrade show"],
      ].sort(),
    );
  });

  it("reach every two-word command, though `projects` is a command of its own", async () => {
    const { io, out } = fakeIo();
    expect(await dispatch(COMMANDS, ["projects", "show", "--help"], io, "1.0.0")).toBe(0);
    expect(out.stdout).toMatch(/^gridx projects show — /);
  });

  it.each(COMMANDS.map((c) => [c.name, c] as const))("%s has --help with usage, examples and exit codes", async (name, c) => {
    const help = commandHelp(c);
    expect(help).toContain(`gridx ${name} — `);
    expect(help).toMatch(/Usage: gridx /);
    expect(help).toMatch(/Examples:\n  gridx /);
    expect(help).toMatch(/Exit codes:\n  0 /);
    expect(help).toContain("--json");
    const { io, out } = fakeIo();
    expect(await dispatch(COMMANDS, [...name.split(" "), "--help"], io, "1.0.0")).toBe(0);
    expect(out.stdout).toBe(help);
  });

  it("documents the job exit codes on run and submit", () => {
    for (const cmd of jobCommands.filter((c) => c.name === "run" || c.name === "submit")) expect(commandHelp(cmd)).toMatch(/124 .*timeout[\s\S]*130 .*canceled/);
  });

  it("prints the overview for --help (exit 0) and with no command (exit 2)", async () => {
    const help = fakeIo();
    expect(await dispatch(COMMANDS, ["--help"], help.io, "1.0.0")).toBe(0);
    expect(help.out.stdout).toMatch(/^gridx — /);
    for (const c of COMMANDS) expect(help.out.stdout).toContain(`  ${c.name} `);
    expect(help.out.stdout).toMatch(/Exit codes:/);
    const none = fakeIo();
    expect(await dispatch(COMMANDS, [], none.io, "1.0.0")).toBe(2);
    const version = fakeIo();
    expect(await dispatch(COMMANDS, ["--version"], version.io, "1.2.3")).toBe(0);
    expect(version.out.stdout).toBe("gridx 1.2.3\n");
  });

  it.each([
    [["frobnicate"], /unknown command "frobnicate"/],
    [["artifacts"], /needs one of: ls, get/],
    [["list", "--bogus"], /--bogus/],
    [["status"], /give one job id/],
    [["artifacts", "get", "j_1"], /give the job id and the artifact's name/],
    [["tokens", "create", "x", "--pool", "p"], /--pool is for agent tokens/],
    [["login"], /give the control plane's URL/],
    [["projects", "shwo"], /takes no arguments \(got shwo\); see also gridx projects show/],
    [["projects", "set", "lab"], /say what to change/],
    [["projects", "set", "lab", "--max-running", "many"], /--max-running takes a whole number/],
    [["projects", "create", "lab", "--max-dataset-bytes", "lots"], /--max-dataset-bytes takes a size/],
    [["projects", "create", "lab", "--weight", "0"], /--weight takes a positive number/],
    [["members"], /needs one of: ls, add, rm/],
    [["members", "add", "lab", "ada"], /give the role: --role owner, member, viewer/],
    [["members", "add", "lab", "ada", "--role", "boss"], /there is no role "boss"/],
    [["tokens", "create", "x", "--agent", "--user", "ada"], /--user is for API tokens/],
    [["tokens", "create", "x", "--expires-in", "a month"], /--expires-in takes a duration such as 90, 90s, 10m, 1h30m or 2d, not "a month"/],
    [["tokens", "revoke"], /give one token id/],
    [["list", "--tag", "sweep"], /--tag takes KEY=VALUE/],
    [["list", "--project", "a", "--all-projects"], /do not go together/],
    [["submit", "--tag", "nokey", "--image", "i", "--", "true"], /--tag takes KEY=VALUE/],
    [["config", "set", "colour", "blue"], /there is no setting "colour"/],
    [["config", "set", "constructor", "x"], /there is no setting "constructor"/],
    [["config", "set", "project"], /give one value/],
    [["run"], /give a Python script/],
  ])("refuses %j as bad usage", async (argv, message) => {
    const { io } = fakeIo({ GRIDX_URL: "http://127.0.0.1:9", GRIDX_TOKEN: "t" });
    const run = dispatch(COMMANDS, argv, io, "1.0.0");
    await expect(run).rejects.toThrow(UsageError);
    await expect(dispatch(COMMANDS, argv, io, "1.0.0")).rejects.toThrow(message);
  });

  it("passes flags after the script to the script (--help included)", async () => {
    // No server: the request fails only once it is built, so the argv split is what is tested.
    const { io } = fakeIo({ GRIDX_URL: "http://127.0.0.1:9", GRIDX_TOKEN: "t" });
    await expect(dispatch(COMMANDS, ["submit", "--pool", "p", join(ROOT, "package.json"), "--help"], io, "1.0.0")).rejects.toThrow(/cannot reach/);
  });
});

describe("the CLI's sources", () => {
  it("import the control plane only as types, so no worker code runs in the CLI", () => {
    const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
    const offending = files(join(ROOT, "cli", "src"))
      .filter((f) => f.endsWith(".ts"))
      .flatMap((f) => [...readFileSync(f, "utf8").matchAll(/^import\s+(?!type\s)[^;]*from\s+"([^"]*control-plane[^"]*)"/gm)].map((m) => `${f}: ${m[1]}`));
    expect(offending).toEqual([]);
  });
});
