/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { AuditAction } from "../../audit.ts";
import { AppError } from "../../errors.ts";
import { settingsOf } from "../../settings.ts";
import { apiFor, call } from "../api.ts";
import { installLines } from "../install-lines.ts";
import { enc, flashFrom, orExplain, page } from "../render.tsx";
import type { DashEnv } from "../session.ts";
import { viewerOf } from "../viewer.ts";
import { AuditLogPage, DatasetsPage, poolHref, PoolSandboxPage, PoolsPage, ProbesPage, ProbeTable, TokensPage } from "../views/admin.tsx";
import { OnboardingIssuedPage, OnboardingPage, OnboardingWatch } from "../views/onboarding.tsx";
import type { Flash } from "../views/parts.tsx";

type Handler = (c: Context<DashEnv>) => Promise<Response>;

/**
 * The operator's pages: onboarding a worker, tokens, the audit log, probes, datasets and pool
 * policies. Each is the admin's: another viewer gets a 403 page here (the API would refuse
 * most of them anyway; this keeps the pages whole rather than half-refused).
 */
export const adminPages = new Hono<DashEnv>();

function adminOnly(handler: Handler): Handler {
  return (c) => {
    if (c.var.session.principal.kind !== "admin") throw new AppError("forbidden", "this page is for the admin");
    return handler(c);
  };
}
const get = (path: string, handler: Handler) => adminPages.get(path, adminOnly(handler));
const post = (path: string, handler: Handler) => adminPages.post(path, adminOnly(handler));

const text = (body: Record<string, unknown>, name: string) => (typeof body[name] === "string" ? (body[name] as string).trim() : "");
const query = (c: Context<DashEnv>, name: string) => c.req.query(name) || undefined;
/** A path parameter; the handlers are typed for any path, so Hono cannot know it is there. */
const param = (c: Context<DashEnv>, name: string) => c.req.param(name) ?? "";

// Onboarding: issue an agent token for a pool, show how to start an agent with it, watch it join.

async function renderOnboarding(c: Context<DashEnv>, form: { pool: string; name: string }, flash: Flash, status: ContentfulStatusCode = 200) {
  const api = await apiFor(c);
  const [viewer, { pools }] = await Promise.all([viewerOf(c, api), call(api.v1.pools.$get())]);
  return page(c, <OnboardingPage viewer={viewer} pools={pools.map((p) => p.pool)} pool={form.pool} name={form.name} flash={flash} />, status);
}

get("/ui/onboarding", (c) => renderOnboarding(c, { pool: query(c, "pool") ?? "default", name: "new-worker" }, flashFrom(c)));

// The token's text goes into this one answer (no-store) and nowhere else: not a redirect, not a log.
post("/ui/onboarding", async (c) => {
  const body = await c.req.parseBody();
  const form = { pool: text(body, "pool"), name: text(body, "name") };
  const api = await apiFor(c);
  return orExplain(
    async () => {
      const issued = await call(api.v1["agent-tokens"].$post({ json: form }));
      const lines = installLines({ url: new URL(c.req.url).origin, token: issued.token, version: settingsOf(c.env).AGENT_RECOMMENDED_VERSION });
      return page(c, <OnboardingIssuedPage viewer={await viewerOf(c, api)} issued={issued} lines={lines} />, 201);
    },
    (message, status) => renderOnboarding(c, form, { error: `Could not issue the token: ${message}` }, status),
  );
});

get("/ui/live/onboarding", async (c) => {
  const token = c.req.query("token") ?? "";
  // Without a token the API's list is every worker; the page watches for one token's only.
  if (!token) throw new AppError("validation_failed", "token: name the agent token (its id) whose workers to watch for", "token");
  const pool = query(c, "pool");
  const { workers } = await call((await apiFor(c)).v1.workers.$get({ query: { pool, token } }));
  return c.html(<OnboardingWatch issued={{ id: token, pool: pool ?? null }} workers={workers} />);
});

// Tokens: agent and API tokens together, newest first; revoke goes to the kind's own route.

async function renderTokens(c: Context<DashEnv>, flash: Flash, status: ContentfulStatusCode = 200) {
  const api = await apiFor(c);
  const [viewer, agents, users] = await Promise.all([viewerOf(c, api), call(api.v1["agent-tokens"].$get()), call(api.v1["api-tokens"].$get())]);
  const tokens = [...agents.tokens, ...users.tokens].sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
  return page(c, <TokensPage viewer={viewer} tokens={tokens} now={Date.now()} flash={flash} />, status);
}

get("/ui/tokens", (c) => renderTokens(c, flashFrom(c)));

post("/ui/tokens/:kind/:id/revoke", async (c) => {
  const api = await apiFor(c);
  const id = { id: enc(param(c, "id")) };
  const kind = param(c, "kind");
  if (kind !== "agent" && kind !== "user") throw new AppError("not_found", `there is no ${kind} kind of token`);
  return orExplain(
    async () => {
      await call(kind === "agent" ? api.v1["agent-tokens"][":id"].$delete({ param: id }) : api.v1["api-tokens"][":id"].$delete({ param: id }));
      return c.redirect("/ui/tokens?done=token_revoked", 303);
    },
    (message, status) => renderTokens(c, { error: `Could not revoke the token: ${message}` }, status),
  );
});

// The audit log, filtered as the API filters it, a page at a time.
get("/ui/audit", async (c) => {
  const api = await apiFor(c);
  const filter = { action: query(c, "action"), project: query(c, "project"), actor: query(c, "actor") };
  const [viewer, audit] = await Promise.all([
    viewerOf(c, api),
    call(api.v1.audit.$get({ query: { ...filter, action: filter.action as AuditAction | undefined, cursor: query(c, "cursor"), limit: query(c, "limit") } })),
  ]);
  return page(c, <AuditLogPage viewer={viewer} events={audit.events} next={audit.next_cursor} filter={{ ...filter, limit: query(c, "limit") }} />);
});

// Probes: one worker's, with a form that runs one more.

async function renderProbes(c: Context<DashEnv>, asked: string | undefined, flash: Flash, status: ContentfulStatusCode = 200) {
  const api = await apiFor(c);
  const [viewer, { workers }] = await Promise.all([viewerOf(c, api), call(api.v1.workers.$get({ query: {} }))]);
  const chosen = workers.find((w) => w.id === asked) ?? (asked ? undefined : workers[0]);
  if (asked && !chosen) throw new AppError("not_found", `no worker ${asked}`);
  const probes = chosen ? (await call(api.v1.workers[":id"].probes.$get({ param: { id: enc(chosen.id) } }))).probes : [];
  return page(c, <ProbesPage viewer={viewer} workers={workers} chosen={chosen} probes={probes} flash={flash} />, status);
}

get("/ui/probes", (c) => renderProbes(c, query(c, "worker"), flashFrom(c)));

get("/ui/live/probes", async (c) => {
  const worker = c.req.query("worker") ?? "";
  const { probes } = await call((await apiFor(c)).v1.workers[":id"].probes.$get({ param: { id: enc(worker) } }));
  return c.html(<ProbeTable worker={worker} probes={probes} />);
});

post("/ui/probes/:worker", async (c) => {
  const body = await c.req.parseBody();
  const worker = param(c, "worker");
  const timeout = text(body, "timeout_s");
  const api = await apiFor(c);
  return orExplain(
    async () => {
      await call(api.v1.workers[":id"].probes.$post({ param: { id: enc(worker) }, json: { command: text(body, "command"), ...(timeout ? { timeout_s: Number(timeout) } : {}) } }));
      return c.redirect(`/ui/probes?worker=${enc(worker)}&done=probe_done`, 303);
    },
    (message, status) => renderProbes(c, worker, { error: `Could not run the probe: ${message}` }, status),
  );
});

// Datasets of every project (the admin reads them all), newest first.
get("/ui/datasets", async (c) => {
  const api = await apiFor(c);
  const project = query(c, "project");
  const [viewer, list] = await Promise.all([viewerOf(c, api), call(api.v1.datasets.$get({ query: { project, cursor: query(c, "cursor") } }))]);
  return page(c, <DatasetsPage viewer={viewer} datasets={list.datasets} next={list.next_cursor} project={project} />);
});

// Pools and their sandbox policy; `?pool=` opens one that has no workers or jobs yet.
get("/ui/pools", async (c) => {
  const asked = query(c, "pool");
  if (asked) return c.redirect(poolHref(asked), 303);
  const api = await apiFor(c);
  const [viewer, { pools }] = await Promise.all([viewerOf(c, api), call(api.v1.pools.$get())]);
  return page(c, <PoolsPage viewer={viewer} pools={pools} />);
});

async function renderPool(c: Context<DashEnv>, flash: Flash, status: ContentfulStatusCode = 200) {
  const api = await apiFor(c);
  const [viewer, view] = await Promise.all([viewerOf(c, api), call(api.v1.pools[":pool"].sandbox.$get({ param: { pool: enc(param(c, "pool")) } }))]);
  return page(c, <PoolSandboxPage viewer={viewer} view={view} flash={flash} />, status);
}

get("/ui/pools/:pool", (c) => renderPool(c, flashFrom(c)));

/** One entry a line, blank lines dropped. */
const listOf = (value: string) =>
  value
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);

// The form holds the whole policy; the API validates it and names the field it refuses.
post("/ui/pools/:pool/sandbox", async (c) => {
  const body = await c.req.parseBody({ all: true });
  const runtimes = ([] as unknown[]).concat(body.runtimes ?? []).filter((r): r is string => typeof r === "string");
  const policy = {
    default_runtime: text(body, "default_runtime"),
    runtimes,
    egress: body.egress === "1",
    egress_allow: listOf(text(body, "egress_allow")),
    build_network: text(body, "build_network"),
    images: listOf(text(body, "images")),
    exec: body.exec === "1",
  };
  const pool = param(c, "pool");
  const api = await apiFor(c);
  return orExplain(
    async () => {
      // The API's validator is the judge of these strings; the cast only hands them over.
      await call(api.v1.pools[":pool"].sandbox.$put({ param: { pool: enc(pool) }, json: policy as Parameters<typeof api.v1.pools[":pool"]["sandbox"]["$put"]>[0]["json"] }));
      return c.redirect(`${poolHref(pool)}?done=sandbox_saved`, 303);
    },
    (message, status) => renderPool(c, { error: `Could not save the policy: ${message}` }, status),
  );
});
