import type { ApiClient } from "../api.ts";
import { seconds } from "../args.ts";
import { command } from "../cli.ts";
import { CliError, UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { ago, fromNow, keyValues, table } from "../format.ts";

const adminOnly = "this needs the admin token (GRIDX_ADMIN_TOKEN)";

export const whoami = command({
  name: "whoami",
  group: "Access",
  summary: "show who the token acts as, and its role in each project",
  usage: ["whoami"],
  options: {},
  optionsHelp: "",
  examples: ["gridx whoami", "gridx whoami --json | jq -r '.projects[] | \"\\(.project) \\(.role)\"'"],
  async run({ positionals }, ctx) {
    if (positionals.length) throw new UsageError("gridx whoami takes no arguments");
    const api = ctx.api();
    const me = await api.json(api.rpc.v1.me.$get());
    const roles = me.projects.map((p) => `${p.project} (${p.role})`).join(", ");
    const human =
      me.kind === "admin"
        ? keyValues([
            ["you are", "the admin (the admin token): every project, every route"],
            ["control plane", api.base],
          ])
        : keyValues([
            ["you are", me.user ? `${me.user.name} (${me.user.id})` : "a user"],
            ["projects", roles || "none yet: ask a project's owner to add you (gridx members add)"],
            ["control plane", api.base],
          ]);
    ctx.print(human, me);
    return EXIT.ok;
  },
});

export const usersCreate = command({
  name: "users create",
  group: "Access",
  summary: "create a user (an identity API tokens act as); admin",
  usage: ["users create NAME"],
  options: {},
  optionsHelp: "",
  notes: "NAME: letters, digits, '.', '_', '@' or '-', up to 100 characters. Then issue it a token and add it to projects.",
  examples: ["gridx users create ada", "gridx users create ada && gridx tokens create ada-laptop --user ada && gridx members add lab ada --role member"],
  async run({ positionals }, ctx) {
    const [name] = positionals;
    if (!name || positionals.length > 1) throw new UsageError("give the user a name: gridx users create NAME");
    const api = ctx.api();
    const user = await api.json(api.rpc.v1.users.$post({ json: { name } }), { forbidden: adminOnly, fields: [["name", "NAME"]] });
    ctx.print(user.id, user);
    ctx.note(`[gridx: user ${user.name} (${user.id}) created; issue it a token with: gridx tokens create NAME --user ${user.name}; add it to a project with: gridx members add PROJECT ${user.name} --role member]`);
    return EXIT.ok;
  },
});

export const usersLs = command({
  name: "users ls",
  group: "Access",
  summary: "list every user; admin",
  usage: ["users ls"],
  options: {},
  optionsHelp: "",
  examples: ["gridx users ls", "gridx users ls --json | jq -r '.users[].name'"],
  async run({ positionals }, ctx) {
    if (positionals.length) throw new UsageError("gridx users ls takes no arguments");
    const api = ctx.api();
    const body = await api.json(api.rpc.v1.users.$get(), { forbidden: adminOnly });
    const now = Date.now();
    ctx.print(body.users.length ? table(["NAME", "ID", "CREATED"], body.users.map((u) => [u.name, u.id, ago(u.created_at, now)])) : "no users yet: gridx users create NAME", body);
    return EXIT.ok;
  },
});

export const tokensCreate = command({
  name: "tokens create",
  group: "Access",
  summary: "issue an API token acting as a user (or, with --agent, an agent token)",
  usage: ["tokens create NAME [--user USER] [--expires-in DUR]", "tokens create NAME --agent [--pool P]"],
  options: { user: { type: "string" }, "expires-in": { type: "string" }, agent: { type: "boolean" }, pool: { type: "string" } },
  optionsHelp: `  --user USER                  the user the token acts as (by name or id); required with the admin
                               token, and a user's own when a user issues it
  --expires-in DUR             it stops working after DUR: 90m, 12h, 30d, 1d12h (a minute to five
                               years; default: never)
  --agent                      an agent token (joins machines to a pool; admin), not an API token
  --pool P                     the agent token's pool (default: default)`,
  notes: "The token is printed once, on stdout; the control plane keeps only its hash. Revoke it with `gridx tokens revoke ID`.",
  examples: [
    "gridx tokens create ada-laptop --user ada --expires-in 30d",
    "gridx tokens create ci             # as a user: a token of your own",
    "gridx tokens create lab-3 --agent --pool gpu",
    'TOKEN=$(gridx tokens create ci --user ada) && gridx login https://gridx.example.com --token "$TOKEN"',
  ],
  async run({ values, positionals }, ctx) {
    const [name] = positionals;
    if (!name || positionals.length > 1) throw new UsageError("give the token a name: gridx tokens create NAME");
    if (values.pool && !values.agent) throw new UsageError("--pool is for agent tokens: add --agent");
    if (values.agent && (values.user || values["expires-in"])) throw new UsageError(`--${values.user ? "user" : "expires-in"} is for API tokens, not agent tokens (--agent)`);
    const expiresIn = values["expires-in"] === undefined ? undefined : seconds("--expires-in", values["expires-in"]);
    const api = ctx.api();
    const hints = {
      forbidden: values.agent ? "agent tokens are the admin's to issue (GRIDX_ADMIN_TOKEN)" : "a user issues tokens for itself; the admin issues them for anyone",
      notFound: "see `gridx users ls`",
      fields: [
        ["name", "NAME"],
        ["user", "--user"],
        ["expires_in_s", "--expires-in"],
      ] satisfies [string, string][],
    };
    const issued = await api.json(
      values.agent
        ? api.rpc.v1["agent-tokens"].$post({ json: { name, ...(values.pool ? { pool: values.pool } : {}) } })
        : api.rpc.v1["api-tokens"].$post({ json: { name, ...(values.user ? { user: values.user } : {}), ...(expiresIn === undefined ? {} : { expires_in_s: expiresIn }) } }),
      hints,
    );
    ctx.print(issued.token, issued);
    const expiry = issued.expires_at ? `expires ${fromNow(issued.expires_at)} (${issued.expires_at})` : "does not expire";
    ctx.note(
      issued.kind === "agent"
        ? `[gridx: agent token ${issued.id} for pool ${issued.pool}; it is shown only now. Start an agent with GRIDX_AGENT_TOKEN=<token>]`
        : `[gridx: API token ${issued.id} (${issued.name}) acting as ${values.user ?? "you"}, ${expiry}; it is shown only now. Use it with: gridx login ${api.base} --token <token>]`,
    );
    return EXIT.ok;
  },
});

export const tokensLs = command({
  name: "tokens ls",
  group: "Access",
  summary: "list API tokens (yours; the admin: everyone's), or agent tokens with --agent",
  usage: ["tokens ls [--agent]"],
  options: { agent: { type: "boolean" } },
  optionsHelp: "  --agent                      agent tokens instead (admin)",
  notes: "Revoked tokens are not listed; a token's text is never shown again after it was issued.",
  examples: ["gridx tokens ls", "gridx tokens ls --agent", "gridx tokens ls --json | jq -r '.tokens[] | select(.last_used_at == null) | .id'"],
  async run({ values, positionals }, ctx) {
    if (positionals.length) throw new UsageError("gridx tokens ls takes no arguments");
    const api = ctx.api();
    const body = values.agent ? await api.json(api.rpc.v1["agent-tokens"].$get(), { forbidden: adminOnly }) : await api.json(api.rpc.v1["api-tokens"].$get());
    const now = Date.now();
    const rows = body.tokens.map((t) => [t.id, t.name, (values.agent ? t.pool : t.user) ?? "-", ago(t.created_at, now), t.last_used_at ? ago(t.last_used_at, now) : "never", t.expires_at ? fromNow(t.expires_at, now) : "never"]);
    const header = ["ID", "NAME", values.agent ? "POOL" : "USER", "CREATED", "LAST USED", "EXPIRES"];
    ctx.print(rows.length ? table(header, rows) : `no ${values.agent ? "agent" : "API"} tokens`, body);
    return EXIT.ok;
  },
});

/**
 * Revokes a token by id: an API token, else (or with `agent`) an agent token. Token ids do
 * not say their kind, so without `agent` a 404 from the API tokens is asked of the agent tokens.
 */
export async function revokeToken(api: ApiClient, id: string, agent: boolean): Promise<"api" | "agent"> {
  const hints = { notFound: agent ? "see `gridx tokens ls --agent`" : "see `gridx tokens ls`", forbidden: adminOnly };
  const revokeAgent = () => api.rpc.v1["agent-tokens"][":id"].$delete({ param: { id } });
  if (agent) {
    await api.ok(revokeAgent(), hints);
    return "agent";
  }
  const asApi = await api.rpc.v1["api-tokens"][":id"].$delete({ param: { id } });
  if (asApi.status !== 404) {
    await api.ok(Promise.resolve(asApi), hints);
    return "api";
  }
  const asAgent = await revokeAgent();
  // 403: a user may not touch agent tokens, so the id is no token of theirs.
  if (asAgent.status === 404 || asAgent.status === 403) {
    throw new CliError(`no token ${id} that you may revoke: see \`gridx tokens ls\`${asAgent.status === 404 ? " and `gridx tokens ls --agent`" : ""}`);
  }
  await api.ok(Promise.resolve(asAgent), hints);
  return "agent";
}

export const tokensRevoke = command({
  name: "tokens revoke",
  group: "Access",
  summary: "revoke a token at once (API or agent token; its next request is refused)",
  usage: ["tokens revoke ID [--agent]"],
  options: { agent: { type: "boolean" } },
  optionsHelp: "  --agent                      ID is an agent token's (found either way; this saves a request)",
  notes: `A user revokes its own API tokens; the admin any token. Revoking an agent token disconnects
the agents that use it. The dashboard sessions opened with an API token end with it.`,
  examples: ["gridx tokens revoke tok_01jd2x7k8m", "gridx tokens ls --json | jq -r '.tokens[] | select(.name == \"old-laptop\") | .id' | xargs -n1 gridx tokens revoke"],
  async run({ values, positionals }, ctx) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError("give one token id: gridx tokens revoke ID (see gridx tokens ls)");
    const kind = await revokeToken(ctx.api(), id, values.agent === true);
    ctx.print(`revoked ${kind === "api" ? "API" : "agent"} token ${id}`, { id, kind: kind === "api" ? "user" : "agent", revoked: true });
    return EXIT.ok;
  },
});

export const accessCommands = [whoami, usersCreate, usersLs, tokensCreate, tokensLs, tokensRevoke];
