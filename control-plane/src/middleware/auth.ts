import type { Context, MiddlewareHandler } from "hono";
import { resolveSecret } from "../auth/tokens.ts";
import type { Principal } from "../auth/principal.ts";
import { createDb } from "../db/client.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";

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

/**
 * Admits callers whose token is of one of the given kinds. A missing, unknown, revoked or
 * expired token is 401; a valid token of another kind (an agent token on a user route) is 403.
 */
export function requireAuth(...kinds: Principal["kind"][]): MiddlewareHandler<AppEnv> {
  return async function auth(c, next) {
    const bearer = bearerOf(c);
    if (!bearer) throw new AppError("unauthorized", "send a token as `Authorization: Bearer <token>`");
    const resolved = await resolveSecret(createDb(c.env.DB), bearer, c.env.GRIDX_ADMIN_TOKEN);
    if (!resolved) throw new AppError("unauthorized", "the token is not valid, has expired or has been revoked");
    const { principal } = resolved;
    if (!kinds.includes(principal.kind)) {
      const article = (k: string) => (/^[aeiou]/.test(k) ? `an ${k}` : `a ${k}`);
      throw new AppError("forbidden", `${article(principal.kind)} token cannot use this route; it needs ${kinds.map(article).join(" or ")} token`);
    }
    if (resolved.touch) later(c, resolved.touch);
    c.set("principal", principal);
    await next();
  };
}
