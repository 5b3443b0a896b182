import type { MiddlewareHandler } from "hono";
import { principalFor } from "../auth/tokens.ts";
import type { Principal } from "../auth/principal.ts";
import { createDb } from "../db/client.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";

/**
 * Admits callers whose token is of one of the given kinds. A missing or unknown token is
 * 401; a valid token of another kind (an agent token on a user route) is 403.
 */
export function requireAuth(...kinds: Principal["kind"][]): MiddlewareHandler<AppEnv> {
  return async function auth(c, next) {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new AppError("unauthorized", "send a token as `Authorization: Bearer <token>`");
    const principal = await principalFor(createDb(c.env.DB), match[1]!, c.env.GRIDX_ADMIN_TOKEN);
    if (!principal) throw new AppError("unauthorized", "the token is not valid or has been revoked");
    if (!kinds.includes(principal.kind)) {
      const article = (k: string) => (/^[aeiou]/.test(k) ? `an ${k}` : `a ${k}`);
      throw new AppError("forbidden", `${article(principal.kind)} token cannot use this route; it needs ${kinds.map(article).join(" or ")} token`);
    }
    c.set("principal", principal);
    await next();
  };
}
