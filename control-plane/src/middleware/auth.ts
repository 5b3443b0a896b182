import type { Context, MiddlewareHandler } from "hono";
import type { Principal } from "../auth/principal.ts";
import { clientAddress } from "../audit.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { authenticate, type Refusal } from "../limits/gate.ts";

/** The bearer secret of a request, if it sent one in the expected form. */
export const bearerOf = (c: Context) => /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? null;

/** Runs a write after the answer, where the runtime allows it (the dashboard's in-process calls may not). */
export function later(c: Context, work: () => Promise<unknown>) {
  const run = () => work().catch((err: unknown) => console.error(`${c.req.method} ${c.req.path}: a deferred write failed`, err instanceof Error ? err.message : String(err)));
  try {
    c.executionCtx.waitUntil(run());
  } catch {
    void run();
  }
}

/** The agents' WebSocket: its upgrade is not counted against the token, nor is any message on it. */
const AGENT_SOCKET = "/v1/agent/connect";

const tooManyRequests = (c: Context, r: Refusal) =>
  c.json(new AppError("too_many_requests", r.message, undefined, { limit: r.limit }).toJSON(), 429, { "Retry-After": String(r.retryAfterS) });

/**
 * Admits callers whose token is of one of the given kinds. A missing, unknown, revoked or
 * expired token is 401; a valid token of another kind (an agent token on a user route) is 403.
 * Over the token's rate limit, or from an address with too many failed authentications, 429
 * with `Retry-After` (limits/gate.ts).
 */
export function requireAuth(...kinds: Principal["kind"][]): MiddlewareHandler<AppEnv> {
  return async function auth(c, next) {
    const bearer = bearerOf(c);
    if (!bearer) throw new AppError("unauthorized", "send a token as `Authorization: Bearer <token>`");
    // A fleet reconnecting after a restart, usually on one token per pool, must not be turned away.
    const socket = c.req.path === AGENT_SOCKET && c.req.header("upgrade")?.toLowerCase() === "websocket";
    const found = await authenticate(c.env, bearer, clientAddress(c), !socket);
    if (!found.resolved) {
      if (found.refusal) return tooManyRequests(c, found.refusal);
      throw new AppError("unauthorized", "the token is not valid, has expired or has been revoked");
    }
    const { resolved } = found;
    const { principal } = resolved;
    if (!kinds.includes(principal.kind)) {
      const article = (k: string) => (/^[aeiou]/.test(k) ? `an ${k}` : `a ${k}`);
      throw new AppError("forbidden", `${article(principal.kind)} token cannot use this route; it needs ${kinds.map(article).join(" or ")} token`);
    }
    if (resolved.touch) later(c, resolved.touch);
    c.set("principal", principal);
    return next();
  };
}
