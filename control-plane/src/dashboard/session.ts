import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Principal } from "../auth/principal.ts";
import { principalFor } from "../auth/tokens.ts";
import { createDb } from "../db/client.ts";
import type { Bindings } from "../env.ts";
import { settingsOf } from "../settings.ts";

/** A signed-in dashboard user: the API or admin token it signed in with, and whose it is. */
export interface Session {
  token: string;
  principal: Exclude<Principal, { kind: "agent" }>;
}

export type DashEnv = { Bindings: Bindings; Variables: { session: Session } };

const COOKIE = "gridx_session";
/** The cookie is sent to the dashboard only, never to the API. */
const COOKIE_PATH = "/ui";
/** A sign-in lasts a working day. */
const SESSION_S = 12 * 3600;

/** Header the dashboard's script sends when it wants an HTML fragment, not a page. */
export const FRAGMENT_HEADER = "x-gridx-fragment";

/**
 * Resolves a token exactly as the API's bearer check does. Agent tokens are refused: they
 * are good for connecting an agent and nothing else.
 */
export async function verifyToken(env: Bindings, token: string): Promise<Session["principal"] | null> {
  const principal = await principalFor(createDb(env.DB), token, env.GRIDX_ADMIN_TOKEN);
  return principal && principal.kind !== "agent" ? principal : null;
}

const isHttps = (c: Context) => new URL(c.req.url).protocol === "https:";

export function startSession(c: Context, token: string) {
  setCookie(c, COOKIE, token, { path: COOKIE_PATH, httpOnly: true, secure: isHttps(c), sameSite: "Strict", maxAge: SESSION_S });
}

export function endSession(c: Context) {
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
    const token = getCookie(c, COOKIE);
    const principal = token ? await verifyToken(c.env, token) : null;
    if (!token || !principal) {
      if (token) endSession(c);
      if (wantsFragment(c)) return c.text("sign in again: the session is missing or no longer valid", 401);
      // A page comes back after signing in; a form post cannot be replayed, so it starts over.
      const url = new URL(c.req.url);
      return c.redirect(c.req.method === "GET" ? `/ui/login?next=${encodeURIComponent(url.pathname + url.search)}` : "/ui/login", 303);
    }
    c.set("session", { token, principal });
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
