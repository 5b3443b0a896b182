import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { portPath, PortNumber, TUNNEL_LIMITS, TunnelTarget, type JobPort, type JobSpec } from "../../../protocol/index.ts";
import { actorName } from "../auth/principal.ts";
import { audit } from "../audit.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import { TUNNEL_HEADER, type TunnelRequest } from "../coordinator/tunnel-hub.ts";
import { createDb, type Db } from "../db/client.ts";
import { getJob, type JobRow } from "../db/jobs.ts";
import { getPoolSandbox } from "../db/pools.ts";
import { consumePortLink, createPortLink, createPortSession, portSessionOf } from "../db/port-sessions.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { bearerOf, later, requireAuth } from "../middleware/auth.ts";
import { access, errors, json, router } from "../openapi.ts";
import { settingsOf } from "../settings.ts";
import { PORT_HOST_HEADER, portHostName } from "../middleware/port-hosts.ts";
import { mustGetJob } from "./guards.ts";

const tags = ["jobs"];
const user = access("admin", "user");
const authenticated = requireAuth("admin", "user");

/** The port session's cookie; scoped to its port's path, so each port has its own. */
export const PORT_COOKIE = "gridx_port";
/** The query parameter a one-time link carries. */
export const LINK_PARAM = "gridx_link";

const JobParams = z.object({ id: z.string().max(64).openapi({ example: "j_01jd2x7k8m9n0p1q2r3s4t5v6w" }) });
const PortParams = JobParams.extend({ port: z.coerce.number().pipe(PortNumber).openapi({ type: "integer", example: 8888 }) });
const PortLink = z
  .object({
    url: z.string().openapi({ description: `open it once within ${TUNNEL_LIMITS.link_ttl_s} s: it sets the port's session cookie and redirects to the port` }),
    expires_at: z.string(),
  })
  .openapi("PortLink");
const ExecQuery = z.object({
  cmd: z.union([z.string(), z.array(z.string())]).openapi({ description: "the argv, one `cmd` per argument, in order" }),
  tty: z.enum(["0", "1", "true", "false"]).optional().openapi({ description: "1: run it on a terminal (stdout and stderr come together)" }),
  cols: z.coerce.number().int().min(1).max(1000).optional().openapi({ type: "integer" }),
  rows: z.coerce.number().int().min(1).max(1000).optional().openapi({ type: "integer" }),
});

// Never forwarded: the caller's gridx credentials, and what belongs to the hop, not the request.
const DROPPED = new Set(["authorization", "cookie", "host", "connection", "keep-alive", "upgrade", "transfer-encoding", "te", "trailer", "proxy-authorization"]);
const WS_HANDSHAKE = /^sec-websocket-(key|version|extensions|protocol|accept)$/;

/** The port a job declares, or a 404 saying it declares no such port. */
function declaredPort(job: JobRow, port: number): JobPort {
  const declared = (job.spec as JobSpec).ports.find((p) => p.port === port);
  if (!declared) throw new AppError("not_found", `job ${job.id} declares no port ${port}`);
  return declared;
}

/** A 409 unless the job runs (on a worker) now. */
function mustRun(job: JobRow): asserts job is JobRow & { workerId: string } {
  if (job.status !== "running" || !job.workerId) throw new AppError("conflict", `job ${job.id} is ${job.status}, not running: its ports and exec open only while it runs`);
}

/** The headers forwarded to the server in the job: gridx's credentials and hop headers dropped, other cookies kept. */
function forwardedHeaders(headers: Headers): [string, string][] {
  const out: [string, string][] = [];
  headers.forEach((value, name) => {
    if (DROPPED.has(name) || WS_HANDSHAKE.test(name) || name.startsWith("cf-") || name.startsWith("x-gridx-")) return;
    out.push([name, value]);
  });
  const cookies = (headers.get("cookie") ?? "")
    .split(";")
    .map((c) => c.trim())
    .filter((c) => c && !c.startsWith("gridx_"));
  if (cookies.length) out.push(["cookie", cookies.join("; ")]);
  return out.slice(0, 256);
}

/** Hands a checked stream request to the job's pool coordinator, which relays it over the worker's socket. */
function tunnel(env: AppEnv["Bindings"], job: JobRow & { workerId: string }, target: TunnelRequest["target"], session: string, idleS: number, request: Request): Promise<Response> {
  const open: TunnelRequest = { job_id: job.id, attempt: job.attempt, worker_id: job.workerId, target, idle_timeout_s: idleS, session };
  const headers = new Headers({ [TUNNEL_HEADER]: JSON.stringify(open) });
  if (target.type !== "http") headers.set("upgrade", "websocket");
  const hasBody = target.type === "http" && target.body;
  return coordinatorFor(env, job.pool).fetch(new Request("https://coordinator/tunnel", { method: hasBody ? "POST" : "GET", headers, body: hasBody ? request.body : null }));
}

/**
 * The job behind a port request and the caller's right to it: a bearer token that reads the
 * job's project, or the port's session cookie. A one-time link in the query is traded for the
 * cookie (a redirect); a 401 without either, a 404 as if absent for another project's job.
 */
async function portCaller(c: Context<AppEnv>, db: Db, id: string, port: number): Promise<{ job: JobRow } | { answer: Response }> {
  const now = Date.now();
  const url = new URL(c.req.url);
  const link = url.searchParams.get(LINK_PARAM);
  const onPortHost = c.req.header(PORT_HOST_HEADER) === "1";
  if (link !== null && c.req.method === "GET") {
    // With per-port hosts, browsers get sessions only on a port's own origin, never the control plane's.
    if (settingsOf(c.env).PORTS_DOMAIN && !onPortHost) throw new AppError("unauthorized", "this deployment serves ports at their own hosts (PORTS_DOMAIN): open the link as POST …/links returned it");
    const grant = await consumePortLink(db, link, now);
    const job = grant && grant.jobId === id && grant.port === port ? await getJob(db, id) : undefined;
    if (!job) throw new AppError("unauthorized", "this link is not valid: it was used already, has expired, or is for another port");
    const secret = await createPortSession(db, grant!, declaredPort(job, port).idle_timeout_s, now);
    // A port host is the port's alone, so its cookie covers the host; under the control plane's origin, the port's path only.
    setCookie(c, PORT_COOKIE, secret, { path: onPortHost ? "/" : portPath(id, port), httpOnly: true, sameSite: "Lax", secure: url.protocol === "https:" });
    url.searchParams.delete(LINK_PARAM);
    return { answer: c.redirect(url.pathname + url.search, 302) };
  }
  if (bearerOf(c)) {
    const refused = await authenticated(c, async () => undefined);
    if (refused) return { answer: refused };
    return { job: await mustGetJob(db, c.get("principal"), id) };
  }
  // Sessions opened at a port's own host are that host's: the control plane's origin takes none.
  const cookie = settingsOf(c.env).PORTS_DOMAIN && !onPortHost ? undefined : getCookie(c, PORT_COOKIE);
  const session = cookie ? await portSessionOf(db, cookie, now) : null;
  if (!session || session.jobId !== id || session.port !== port) {
    throw new AppError("unauthorized", "send a token as `Authorization: Bearer <token>`, or open a link from POST /v1/jobs/:id/ports/:port/links");
  }
  // Port hosts are one site, so SameSite lets another job's page send this cookie: only the port's own pages may use it to change anything.
  if (fromElsewhere(c)) throw new AppError("forbidden", "the port's session cookie works only from the port's own pages (the request's Origin is another)");
  if (session.touch) later(c, session.touch);
  const job = await getJob(db, id);
  if (!job) throw new AppError("not_found", `no job ${id}`);
  return { job };
}

/**
 * Whether a browser sent this from a page of another origin: an unsafe method or a WebSocket
 * whose Origin (or Sec-Fetch-Site, where Origin is absent) is not the port's own. Clients that
 * are not browsers send neither, and are no one's confused deputy.
 */
function fromElsewhere(c: Context<AppEnv>): boolean {
  const upgrade = c.req.header("upgrade")?.toLowerCase() === "websocket";
  if (!upgrade && (c.req.method === "GET" || c.req.method === "HEAD")) return false;
  const origin = c.req.header("origin");
  if (origin) return origin !== new URL(c.req.url).origin;
  const site = c.req.header("sec-fetch-site");
  return site !== undefined && site !== "same-origin" && site !== "none";
}

/** Relays any request under a port's path to the server in the job's container. */
async function proxy(c: Context<AppEnv>): Promise<Response> {
  const params = PortParams.safeParse(c.req.param());
  if (!params.success) throw new AppError("not_found", `no port ${c.req.param("port")}`);
  const { id, port } = params.data;
  const db = createDb(c.env.DB);
  const found = await portCaller(c, db, id, port);
  if ("answer" in found) return found.answer;
  const { job } = found;
  const declared = declaredPort(job, port);
  mustRun(job);
  const settings = settingsOf(c.env);
  const url = new URL(c.req.url);
  const base = portPath(id, port);
  const path = (declared.strip_prefix ? `/${url.pathname.slice(base.length)}` : url.pathname) + url.search;
  const headers = forwardedHeaders(c.req.raw.headers);
  if (c.req.header("upgrade")?.toLowerCase() === "websocket") {
    const protocols = (c.req.header("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim()).filter(Boolean).slice(0, 16);
    return tunnel(c.env, job, { type: "ws", port, path, headers, protocols, max_message_bytes: settings.TUNNEL_WS_MESSAGE_BYTES }, `port:${port}`, declared.idle_timeout_s, c.req.raw);
  }
  const declaredBytes = Number(c.req.header("content-length") ?? "0");
  if (declaredBytes > settings.TUNNEL_REQUEST_BYTES) throw new AppError("payload_too_large", `the body is larger than TUNNEL_REQUEST_BYTES (${settings.TUNNEL_REQUEST_BYTES} bytes)`);
  const method = c.req.method.toUpperCase();
  const body = c.req.raw.body !== null && method !== "GET" && method !== "HEAD";
  const target = TunnelTarget.safeParse({ type: "http", port, method, path, headers, body });
  if (!target.success) throw new AppError("validation_failed", `this request cannot go through the tunnel: ${target.error.issues[0]?.message ?? "invalid"}`);
  return tunnel(c.env, job, target.data, `port:${port}`, declared.idle_timeout_s, c.req.raw);
}

const PROXY_DESCRIPTION = `Every method, and WebSocket upgrades, under \`/v1/jobs/{id}/ports/{port}/\` is relayed to the server on that port of the job's container while it runs (the bare path redirects, 308, to the trailing slash). Needs an API token that reads the job's project, or the \`${PORT_COOKIE}\` cookie a one-time link sets (\`GET …/?${LINK_PARAM}=<token>\` answers 302 with it). The token and that cookie are not forwarded. With the port's \`strip_prefix\` the server sees \`/{path}\`, else the full path. Answers are the server's; the relay's own errors are JSON: 401, 404 (no such job or port), 409 (not running), 413 (TUNNEL_REQUEST_BYTES), 429 (TUNNEL_STREAMS_PER_JOB, TUNNEL_STREAMS_PER_AGENT), 502 (nothing answers, or the worker is away), 504 (TUNNEL_OPEN_TIMEOUT_S).`;

// The relay takes every method, so it is documented once, by hand, rather than declared per method.
const documented = router();
documented.openAPIRegistry.registerPath({
  method: "get",
  path: "/{id}/ports/{port}/{path}",
  tags,
  summary: "A job's port, relayed (every method; WebSocket upgrades too)",
  description: PROXY_DESCRIPTION,
  security: user.security,
  request: { params: PortParams.extend({ path: z.string().openapi({ description: "the rest of the path, and the query" }) }) },
  responses: { 200: { description: "The server's answer." }, ...errors(400, 401, 404, 409, 413, 502, 504) },
});

/** A job's ports and its exec: interactive sessions through the worker's own connection (docs/sessions.md). */
export const portRoutes = documented
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/{id}/ports/{port}/links",
      summary: "A one-time link that opens a browser session to a job's port",
      description: `${user.description} Needs read access to the job's project; the job must be running. The link works once, within PORT_LINK_TTL_S (default ${TUNNEL_LIMITS.link_ttl_s} s), at the port's own host where PORTS_DOMAIN is set; the session it opens ends after the port's idle_timeout_s without a request.`,
      request: { params: PortParams },
      responses: { 201: json(PortLink, "The link."), ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const { id, port } = c.req.valid("param");
      const db = createDb(c.env.DB);
      const principal = c.get("principal");
      const job = await mustGetJob(db, principal, id);
      declaredPort(job, port);
      mustRun(job);
      const grant = { jobId: id, port, tokenId: principal.tokenId, createdBy: actorName(principal) };
      const settings = settingsOf(c.env);
      const { token, expiresAt } = await createPortLink(db, grant, settings.PORT_LINK_TTL_S, Date.now());
      const origin = new URL(c.req.url);
      if (settings.PORTS_DOMAIN) origin.hostname = portHostName(id, port, settings.PORTS_DOMAIN);
      const url = `${origin.origin}${portPath(id, port)}?${LINK_PARAM}=${token}`;
      return c.json({ url, expires_at: new Date(expiresAt).toISOString() }, 201);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}/exec",
      summary: "Run a command in a running job's container (WebSocket)",
      description: `${user.description} Needs the member role in the job's project and a pool whose sandbox policy has \`exec\` on; audited (\`job.exec\`). A WebSocket upgrade: binary messages are \`[channel][bytes]\` (0 stdin from the client, 1 stdout, 2 stderr), text messages JSON controls (\`eof\`, \`resize\` from the client; \`exit\` or \`error\`, last, from the server).`,
      request: { params: JobParams, query: ExecQuery },
      responses: { 101: { description: "The exec's WebSocket." }, ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { tty, cols, rows } = c.req.valid("query");
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket") throw new AppError("validation_failed", "exec is a WebSocket: send an upgrade request");
      const db = createDb(c.env.DB);
      const job = await mustGetJob(db, c.get("principal"), id, "member");
      mustRun(job);
      if (!(await getPoolSandbox(db, job.pool)).sandbox.exec) {
        throw new AppError("forbidden", `pool ${job.pool}'s sandbox policy has exec off; the admin may turn it on (PUT /v1/pools/${job.pool}/sandbox {"exec": true})`);
      }
      const argv = c.req.queries("cmd") ?? [];
      const target = TunnelTarget.safeParse({ type: "exec", argv, tty: tty === "1" || tty === "true", cols, rows });
      if (!target.success) throw new AppError("validation_failed", `cmd: ${target.error.issues[0]?.message ?? "invalid"}`, "cmd");
      await audit(c, "job.exec", { project: job.project, target: id, detail: { argv, tty: tty === "1" || tty === "true" } });
      return tunnel(c.env, job, target.data, "exec", TUNNEL_LIMITS.idle_timeout_s.default, c.req.raw);
    },
  )
  .all("/:id/ports/:port", (c) => {
    const url = new URL(c.req.url);
    return c.redirect(`${url.pathname}/${url.search}`, 308);
  })
  .all("/:id/ports/:port/*", proxy);
