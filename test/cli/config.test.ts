import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configPath, normalizeUrl, readConfig, removeConfig, resolveConfig, resolveProject, writeConfig } from "../../cli/src/config.ts";
import { CliError } from "../../cli/src/errors.ts";
import { EXIT } from "../../cli/src/exit-codes.ts";

const tempDir = () => mkdtempSync(join(tmpdir(), "gridx-cli-config-"));

describe("config", () => {
  it("lives under $XDG_CONFIG_HOME, else ~/.config", () => {
    expect(configPath({ XDG_CONFIG_HOME: "/x/conf", HOME: "/home/me" })).toBe("/x/conf/gridx/config.json");
    expect(configPath({ HOME: "/home/me" })).toBe("/home/me/.config/gridx/config.json");
    // The XDG spec ignores a relative path.
    expect(configPath({ XDG_CONFIG_HOME: "rel", HOME: "/home/me" })).toBe("/home/me/.config/gridx/config.json");
  });

  it("is written readable by its owner only, in a folder only they can enter, and read back", () => {
    const dir = tempDir();
    const path = configPath({ XDG_CONFIG_HOME: dir });
    writeConfig(path, { url: "http://127.0.0.1:8787", token: "gxu_secret" });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "gridx")).mode & 0o777).toBe(0o700);
    expect(readConfig(path)).toEqual({ url: "http://127.0.0.1:8787", token: "gxu_secret" });
    // Rewriting an existing file keeps it 0600 too.
    writeConfig(path, { url: "http://h", token: "t2" });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(removeConfig(path)).toBe(true);
    expect(removeConfig(path)).toBe(false);
    expect(readConfig(path)).toBeNull();
  });

  it("says how to fix a file that is not a config", () => {
    const dir = tempDir();
    const path = join(dir, "config.json");
    writeFileSync(path, "{nope");
    expect(() => readConfig(path)).toThrow(/gridx login URL/);
  });

  it("takes GRIDX_URL and GRIDX_TOKEN over the saved values, each on its own", () => {
    const dir = tempDir();
    const env = { XDG_CONFIG_HOME: dir };
    writeConfig(configPath(env), { url: "http://saved:1/", token: "saved-token" });
    expect(resolveConfig(env)).toEqual({ url: "http://saved:1", token: "saved-token" });
    expect(resolveConfig({ ...env, GRIDX_TOKEN: "env-token" })).toEqual({ url: "http://saved:1", token: "env-token" });
    expect(resolveConfig({ ...env, GRIDX_URL: "https://env.example.com" })).toEqual({ url: "https://env.example.com", token: "saved-token" });
  });

  it("without a URL or token, exits 3 telling to log in", () => {
    const dir = tempDir();
    mkdirSync(join(dir, "gridx"));
    let error: unknown;
    try {
      resolveConfig({ XDG_CONFIG_HOME: dir, GRIDX_URL: "http://h" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(EXIT.auth);
    expect((error as CliError).message).toMatch(/no control-plane token: run `gridx login URL`/);
  });

  it("normalizes URLs and refuses what is not http(s)", () => {
    expect(normalizeUrl("https://gridx.example.com/")).toBe("https://gridx.example.com");
    expect(normalizeUrl("http://127.0.0.1:8787")).toBe("http://127.0.0.1:8787");
    expect(() => normalizeUrl("gridx.example.com")).toThrow(/not a URL/);
    expect(() => normalizeUrl("ftp://x")).toThrow(/https:\/\//);
  });

  it("keeps the file's contents to the URL, the token and the settings", () => {
    const dir = tempDir();
    const path = join(dir, "c.json");
    writeConfig(path, { url: "http://h", token: "t" });
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ url: "http://h", token: "t" });
  });

  it("takes the project from the flag, else GRIDX_PROJECT, else the saved default, else leaves it to the server", () => {
    const dir = tempDir();
    const env = { XDG_CONFIG_HOME: dir };
    expect(resolveProject(undefined, env)).toBeUndefined();
    writeConfig(configPath(env), { url: "http://h", token: "t", project: "saved" });
    expect(readConfig(configPath(env))).toEqual({ url: "http://h", token: "t", project: "saved" });
    expect(resolveProject(undefined, env)).toBe("saved");
    expect(resolveProject(undefined, { ...env, GRIDX_PROJECT: "from-env" })).toBe("from-env");
    expect(resolveProject("flag", { ...env, GRIDX_PROJECT: "from-env" })).toBe("flag");
    // The saved project does not change where the CLI talks to.
    expect(resolveConfig(env)).toEqual({ url: "http://h", token: "t" });
  });
});
