import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import { CliError } from "./errors.ts";
import { EXIT } from "./exit-codes.ts";

/** Where the CLI talks to, and with which token. */
export interface Config {
  url: string;
  token: string;
}

/** What the config file holds: `gridx login` saves the URL and token, `gridx config set` the rest. */
export interface SavedConfig {
  url?: string;
  token?: string;
  /** The project job and dataset commands use when they are not given --project. */
  project?: string;
}

type Env = Record<string, string | undefined>;

/** `$XDG_CONFIG_HOME/gridx/config.json`, or `~/.config/gridx/config.json`. */
export function configPath(env: Env = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), ".config");
  return join(base, "gridx", "config.json");
}

/** The saved config, or null when there is none; a file that is not a config is an error that says how to fix it. */
export function readConfig(path: string): SavedConfig | null {
  if (!existsSync(path)) return null;
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as unknown;
    if (typeof parsed !== "object" || parsed === null) throw new Error("not an object");
    const fields = parsed as Record<string, unknown>;
    return Object.fromEntries((["url", "token", "project"] as const).filter((k) => typeof fields[k] === "string").map((k) => [k, fields[k]])) as SavedConfig;
  } catch (err) {
    throw new CliError(`${path} is not a gridx config (${(err as Error).message}): run \`gridx login URL\` to write it again`, EXIT.auth);
  }
}

/** Writes the config readable by its owner only (0600, in a 0700 folder), whole or not at all. */
export function writeConfig(path: string, config: SavedConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  // The mode given at creation is masked by the umask; set it outright.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function removeConfig(path: string): boolean {
  if (!existsSync(path)) return false;
  rmSync(path);
  return true;
}

/** Normalizes a control-plane URL: http(s) only, no trailing slash. */
export function normalizeUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`${raw} is not a URL; give the control plane's, such as https://gridx.example.com`, EXIT.usage);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new CliError(`${raw}: the control plane's URL starts with https:// (or http:// locally)`, EXIT.usage);
  return url.toString().replace(/\/+$/, "");
}

/**
 * The URL and token to use: `GRIDX_URL` and `GRIDX_TOKEN` override what `gridx login` saved,
 * each on its own.
 */
export function resolveConfig(env: Env = process.env, path = configPath(env)): Config {
  const saved = readConfig(path) ?? {};
  const url = env.GRIDX_URL || saved.url;
  const token = env.GRIDX_TOKEN || saved.token;
  if (!url || !token) {
    const missing = [!url && "URL", !token && "token"].filter(Boolean).join(" and ");
    throw new CliError(`no control-plane ${missing}: run \`gridx login URL\` (or set GRIDX_URL and GRIDX_TOKEN)`, EXIT.auth);
  }
  return { url: normalizeUrl(url), token };
}

/**
 * The project a job or dataset command acts in: its --project flag, else `GRIDX_PROJECT`, else
 * the saved default (`gridx config set project P`); undefined leaves it to the server (`default`).
 *
 * @example
 * resolveProject(undefined, { GRIDX_PROJECT: "lab" }) // "lab"
 */
export function resolveProject(flag: string | undefined, env: Env = process.env, path = configPath(env)): string | undefined {
  return flag ?? (env.GRIDX_PROJECT || readConfig(path)?.project);
}
