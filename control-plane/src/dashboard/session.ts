import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Principal } from "../auth/principal.ts";
import { adminSessionTag, PREFIX, randomSecret, resolveSecret, sha256Hex } from "../auth/tokens.ts";
import { authenticate, type Refusal } from "../limits/gate.ts";
import { auditAs, clientAddress } from "../audit.ts";
import { createDb } from "../db/client.ts";
import { insertSession } from "../db/sessions.ts";
import { getToken } from "../db/tokens.ts";
import type { Bindings } from "../env.ts";
import { newId } from "../ids.ts";
import { later } from "../middleware/auth.ts";
import { settingsOf } from "../settings.ts";

/**
 * A signed-in dashboard user: a session of its own (a row in `sessions`), whose secret the
 * cookie holds, acting as the token it was opened with.
 */
export interface Session {
  id: string;
  /** The session's secret (`gxs_…`): the cookie's value, and the bearer of the dashboard's API calls. */
  secret: string;
  principal: Exclude<Principal, { kind: "agent" }>;
}

export type DashEnv = { Bindings: Bindings; Variables: { session: Session } };

const COOKIE = "gridx_session";
/** The cookie is sent to the dashboard only, never to the API. */
export const COOKIE_PATH = "/ui";
/** The most of a browser's User-Agent a session keeps. */
const USER_AGENT_CHARS = 256;

/** Header the dashboard's script sends when it wants an HTML fragment, not a page. */
export const FRAGMENT_HEADER = "x-gridx-fragment";

export const isHttps = (c: Context) => new URL(c.req.url).protocol === "https:";

/**
 * Exchanges an API or admin token for a new session and sets its cookie; not ok for a token
 * that does not resolve (`limited` when its address is past the failed-authentication limit).
 * Agent tokens are refused (they connect agents and nothing else), and so is another
 * session's secret: a session is opened with a token.
 */
export async function openSession(c: Context<DashEnv>, token: string): Promise<{ ok: true } | { ok: false; limited: Refusal | null }> {
  if (token.startsWith(PREFIX.session)) return { ok: false, limited: null };
  const db = createDb(c.env.DB);
  // Under the same failed-authentication limit per address as the API, so the form is no faster way to guess.
  const auth = await authenticate(c.env, token, clientAddress(c), false);
  const resolved = auth.resolved;
  const principal = resolved?.principal;
  if (!resolved || !principal || principal.kind === "agent") return { ok: false, limited: auth.resolved ? null : auth.refusal };
  if (resolved.touch) later(c, resolved.touch);
  const now = Date.now();
  const tokenExpiry = principal.kind === "user" ? ((await getToken(db, principal.tokenId))?.expiresAt ?? null) : null;
  const expiresAt = Math.min(now + settingsOf(c.env).DASHBOARD_SESSION_H * 3_600_000, tokenExpiry ?? Number.POSITIVE_INFINITY);
  const secret = PREFIX.session + randomSecret();
  const id = newId("ses", now);
  const ip = clientAddress(c);
  await insertSession(db, {
    id,
    hash: await sha256Hex(secret),
    tokenId: principal.kind === "admin" ? await adminSessionTag(c.env.GRIDX_ADMIN_TOKEN!, secret) : principal.tokenId,
    userId: principal.kind === "user" ? principal.userId : null,
    ip,
    userAgent: c.req.header("user-agent")?.slice(0, USER_AGENT_CHARS) ?? null,
    createdAt: now,
    expiresAt,
    lastUsedAt: now,
    revokedAt: null,
  });
  await auditAs(db, principal, ip, "session.start", { target: id, detail: { token_id: principal.tokenId } });
  setCookie(c, COOKIE, secret, { path: COOKIE_PATH, httpOnly: true, secure: isHttps(c), sameSite: "Strict", maxAge: Math.ceil((expiresAt - now) / 1000) });
  return { ok: true };
}

/** The session the request's cookie names, if it is still live (not revoked, not expired, its token not revoked). */
export async function sessionOf(c: Context<DashEnv>): Promise<Session | null> {
  const secret = getCookie(c, COOKIE);
  if (!secret?.startsWith(PREFIX.session)) return null;
  const resolved = await resolveSecret(createDb(c.env.DB), secret, c.env.GRIDX_ADMIN_TOKEN);
  if (!resolved?.sessionId || resolved.principal.kind === "agent") return null;
  if (resolved.touch) later(c, resolved.touch);
  return { id: resolved.sessionId, secret, principal: resolved.principal };
}

/** Drops the cookie; the session itself is revoked through the API (`DELETE /v1/sessions/:id`). */
export function dropCookie(c: Context) {
  deleteCookie(c, COOKIE, { path: COOKIE_PATH, httpOnly: true, secure: isHttps(c), sameSite: "Strict" });
}

/** Only dashboard paths may be returned to after signing in (no open redirect). */
export function safeNext(raw: string | undefined): string {
  return raw && /^\/ui(\/|$|\?)/.test(raw) && !raw.startsWith("//") && !raw.includes("\\") ? raw : "/ui";
}

export const wantsFragment = (c: Context) => c.req.header(FRAGMENT_HEADER) === "1" || new URL(c.req.url).pathname.startsWith("/ui/live/");

/**
 * Admits requests that carry a valid session cookie. Pages and form posts without one go to
 * the sign-in page; fragments get a 401, which the page script turns into the same.
 */
export function requireSession(): MiddlewareHandler<DashEnv> {
  return async function session(c, next) {
    const found = await sessionOf(c);
    if (!found) {
      if (getCookie(c, COOKIE) !== undefined) dropCookie(c);
      if (wantsFragment(c)) return c.text("sign in again: the session is missing or no longer valid", 401);
      // A page comes back after signing in; a form post cannot be replayed, so it starts over.
      const url = new URL(c.req.url);
      return c.redirect(c.req.method === "GET" ? `/ui/login?next=${encodeURIComponent(url.pathname + url.search)}` : "/ui/login", 303);
    }
    c.set("session", found);
    return next();
  };
}

/**
 * Refuses state-changing requests that do not come from the dashboard's own pages: the
 * browser's Origin (or, lacking it, Sec-Fetch-Site) must name this origin. Together with the
 * SameSite=Strict cookie this stops cross-site form posts. Bodies are held to the API's limit.
 */
export function sameOriginPosts(): MiddlewareHandler<DashEnv> {
  return async function sameOrigin(c, next) {
    if (c.req.method === "GET" || c.req.method === "HEAD") return next();
    const origin = c.req.header("origin");
    const own = new URL(c.req.url).origin;
    const ok = origin ? origin === own : c.req.header("sec-fetch-site") === "same-origin";
    if (!ok) return c.text("refused: this form must be posted from the gridx dashboard itself", 403);
    const limit = settingsOf(c.env).MAX_BODY_BYTES;
    if (Number(c.req.header("content-length") ?? "0") > limit) return c.text(`the form is larger than ${limit} bytes`, 413);
    return next();
  };
}

/** Headers every dashboard answer carries: no framing, no inline script, no caching of data. */
export function securityHeaders(): MiddlewareHandler<DashEnv> {
  return async function headers(c, next) {
    await next();
    c.header(
      "content-security-policy",
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    c.header("x-content-type-options", "nosniff");
    c.header("referrer-policy", "same-origin");
    c.header("x-frame-options", "DENY");
    if (!c.res.headers.has("cache-control")) c.header("cache-control", "no-store");
  };
}
