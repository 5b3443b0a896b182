import { ApiClient } from "../api.ts";
import { command, type Io } from "../cli.ts";
import { configPath, normalizeUrl, removeConfig, writeConfig } from "../config.ts";
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";

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
    writeConfig(path, { url, token });
    ctx.print(`logged in to ${url}; saved in ${path}`, { url, config: path });
    if (ctx.io.env.GRIDX_URL || ctx.io.env.GRIDX_TOKEN) ctx.note("[gridx: GRIDX_URL / GRIDX_TOKEN are set here and override the saved config]");
    return EXIT.ok;
  },
});

export const logout = command({
  name: "logout",
  group: "Setup",
  summary: "forget the saved URL and token",
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

export const setupCommands = [login, logout];

