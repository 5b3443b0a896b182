import { ApiClient } from "../api.ts";
import { command, type Io } from "../cli.ts";
import { configPath, normalizeUrl, readConfig, removeConfig, resolveProject, writeConfig, type SavedConfig } from "../config.ts";
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { keyValues } from "../format.ts";

/** Reads a token without echoing it on a terminal, or the first line of piped stdin. */
async function readToken(io: Io, url: string): Promise<string> {
  const stdin = io.stdin;
  if (!stdin.isTTY || !stdin.setRawMode) {
    let text = "";
    for await (const chunk of stdin) text += String(chunk);
    return text.split("\n")[0]!.trim();
  }
  io.stderr.write(`Token for ${url} (an API token or the admin token; not shown): `);
  stdin.setRawMode(true);
  stdin.resume();
  try {
    return await new Promise<string>((resolve) => {
      let token = "";
      const onData = (chunk: Buffer | string) => {
        for (const ch of String(chunk)) {
          if (ch === "\r" || ch === "\n") {
            stdin.off("data", onData);
            io.stderr.write("\n");
            resolve(token.trim());
            return;
          }
          if (ch === "\u0003") {
            io.stderr.write("\n");
            io.exit(EXIT.canceled);
          }
          if (ch === "\u007f" || ch === "\b") token = token.slice(0, -1);
          else token += ch;
        }
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
  }
}

export const login = command({
  name: "login",
  group: "Setup",
  summary: "check a token against a control plane and save both for the other commands",
  usage: ["login URL [--token TOKEN]"],
  options: { token: { type: "string" } },
  optionsHelp: `  --token TOKEN                the token (else it is asked for, or read from stdin); argv is
                               visible to other users of this machine, so prefer the prompt or a pipe`,
  notes: `The token is checked against the control plane first, then saved with the URL in
$XDG_CONFIG_HOME/gridx/config.json (~/.config/gridx/config.json), mode 0600.
GRIDX_URL and GRIDX_TOKEN, when set, override what is saved.`,
  examples: ["gridx login https://gridx.example.com", "gridx login http://127.0.0.1:8787 < token.txt", "gridx login https://gridx.example.com --token \"$GRIDX_API_TOKEN\""],
  async run({ values, positionals }, ctx) {
    const [raw] = positionals;
    if (!raw || positionals.length > 1) throw new UsageError("give the control plane's URL: gridx login URL");
    const url = normalizeUrl(raw);
    const token = values.token ?? (await readToken(ctx.io, url));
    if (!token) throw new UsageError("no token: pass --token TOKEN, type it at the prompt, or pipe it in");
    const api = new ApiClient(url, token);
    // The cheapest call any API or admin token may make: proves both the URL and the token.
    await api.json(api.rpc.v1.jobs.$get({ query: { limit: "1" } }), {
      forbidden: "this token cannot submit jobs (an agent token?): use an API token (gridx tokens create) or the admin token",
    });
    const path = configPath(ctx.io.env);
    // A file that is not a config is written anew; a saved default project outlives a new login.
    const project = (() => {
      try {
        return readConfig(path)?.project;
      } catch {
        return undefined;
      }
    })();
    writeConfig(path, { url, token, ...(project ? { project } : {}) });
    ctx.print(`logged in to ${url}; saved in ${path}`, { url, config: path });
    if (ctx.io.env.GRIDX_URL || ctx.io.env.GRIDX_TOKEN) ctx.note("[gridx: GRIDX_URL / GRIDX_TOKEN are set here and override the saved config]");
    return EXIT.ok;
  },
});

export const logout = command({
  name: "logout",
  group: "Setup",
  summary: "forget the saved URL, token and settings (the whole config file)",
  usage: ["logout"],
  options: {},
  optionsHelp: "",
  examples: ["gridx logout"],
  async run({ positionals }, ctx) {
    if (positionals.length) throw new UsageError("gridx logout takes no arguments");
    const path = configPath(ctx.io.env);
    const removed = removeConfig(path);
    ctx.print(removed ? `logged out; removed ${path}` : "not logged in", { removed, config: path });
    return EXIT.ok;
  },
});

/** The settings `gridx config set` writes; the URL and token are `gridx login`'s. */
const SETTINGS = { project: "the project job and dataset commands use without --project (GRIDX_PROJECT overrides it)" } as const;
type Setting = keyof typeof SETTINGS;
const SETTINGS_HELP = Object.entries(SETTINGS)
  .map(([k, v]) => `  ${k.padEnd(29)}${v}`)
  .join("\n");

function settingOf(name: string, key: string | undefined): Setting {
  if (key && Object.hasOwn(SETTINGS, key)) return key as Setting;
  throw new UsageError(`${key ? `there is no setting "${key}"` : "name the setting"}: gridx ${name} ${Object.keys(SETTINGS).join("|")}${name === "config set" ? " VALUE" : ""}`);
}

export const configSet = command({
  name: "config set",
  group: "Setup",
  summary: "save a setting, such as the default project",
  usage: ["config set KEY VALUE"],
  options: {},
  optionsHelp: "",
  notes: `Settings:\n${SETTINGS_HELP}\n\nThey are saved beside the URL and token (see \`gridx login --help\`); a flag wins over its setting.`,
  examples: ["gridx config set project lab", "gridx submit job.py                    # in project lab", "gridx submit --project default job.py   # the flag wins"],
  async run({ positionals }, ctx) {
    const [key, value, ...rest] = positionals;
    const setting = settingOf("config set", key);
    if (!value || rest.length) throw new UsageError(`give one value: gridx config set ${setting} VALUE`);
    const path = configPath(ctx.io.env);
    const saved: SavedConfig = { ...readConfig(path), [setting]: value };
    writeConfig(path, saved);
    ctx.print(`${setting} = ${value}; saved in ${path}`, { [setting]: value, config: path });
    if (setting === "project" && ctx.io.env.GRIDX_PROJECT) ctx.note(`[gridx: GRIDX_PROJECT=${ctx.io.env.GRIDX_PROJECT} is set here and overrides it]`);
    return EXIT.ok;
  },
});

export const configUnset = command({
  name: "config unset",
  group: "Setup",
  summary: "remove a saved setting",
  usage: ["config unset KEY"],
  options: {},
  optionsHelp: "",
  notes: `Settings:\n${SETTINGS_HELP}`,
  examples: ["gridx config unset project   # jobs go to project default again"],
  async run({ positionals }, ctx) {
    const [key, ...rest] = positionals;
    const setting = settingOf("config unset", key);
    if (rest.length) throw new UsageError(`gridx config unset takes one setting`);
    const path = configPath(ctx.io.env);
    const { [setting]: removed, ...kept } = readConfig(path) ?? {};
    if (removed !== undefined) writeConfig(path, kept);
    ctx.print(removed === undefined ? `${setting} was not set` : `${setting} unset (was ${removed})`, { [setting]: null, config: path });
    return EXIT.ok;
  },
});

export const configShow = command({
  name: "config show",
  group: "Setup",
  summary: "show the URL, project and token in use, and where each comes from",
  usage: ["config show"],
  options: {},
  optionsHelp: "",
  notes: "The token itself is never shown, only whether one is set.",
  examples: ["gridx config show", "gridx config show --json | jq -r .project"],
  async run({ positionals }, ctx) {
    if (positionals.length) throw new UsageError("gridx config show takes no arguments");
    const env = ctx.io.env;
    const path = configPath(env);
    const saved = readConfig(path) ?? {};
    const from = (name: string, key: keyof SavedConfig) => (env[name] ? name : saved[key] ? path : undefined);
    const url = env.GRIDX_URL || saved.url;
    const project = resolveProject(undefined, env, path);
    const data = {
      config: path,
      url: url ?? null,
      url_from: from("GRIDX_URL", "url") ?? null,
      token_set: Boolean(env.GRIDX_TOKEN || saved.token),
      token_from: from("GRIDX_TOKEN", "token") ?? null,
      project: project ?? null,
      project_from: from("GRIDX_PROJECT", "project") ?? null,
    };
    const line = (value: string | null, source: string | null, none: string) => (value ? `${value}${source ? `  (from ${source})` : ""}` : none);
    ctx.print(
      keyValues([
        ["url", line(data.url, data.url_from, "not set: gridx login URL")],
        ["token", line(data.token_set ? "set" : null, data.token_from, "not set: gridx login URL")],
        ["project", line(data.project, data.project_from, "not set: jobs and datasets go to project default")],
      ]),
      data,
    );
    return EXIT.ok;
  },
});

export const setupCommands = [login, logout, configSet, configUnset, configShow];

