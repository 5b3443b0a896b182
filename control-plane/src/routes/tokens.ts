import { createRoute, z } from "@hono/zod-openapi";
import { issueToken } from "../auth/tokens.ts";
import { audit } from "../audit.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import { createDb } from "../db/client.ts";
import { findUser } from "../db/projects.ts";
import { getToken, listTokens, revokeToken, tokenView } from "../db/tokens.ts";
import { AppError } from "../errors.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { AgentTokenRequest, ApiTokenRequest, IssuedToken, TokenList } from "../schemas.ts";

const tags = ["tokens"];
const admin = access("admin");
const user = access("admin", "user");
const TokenParams = z.object({ id: z.string().min(1).max(64).openapi({ param: { name: "id", in: "path" }, example: "tok_01jd2x7k8m9n0p1q2r3s4t5v6w" }) });

/** A token's text is shown once, when issued; lists show everything else. Revoking takes effect on the next request. */
export const tokenRoutes = router()
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "post",
      path: "/agent-tokens",
      summary: "Issue an agent token",
      description: `${admin.description} The token lets an agent join one pool and is good for nothing else; its text is shown only in this answer.`,
      request: { body: body(AgentTokenRequest) },
      responses: { 201: json(IssuedToken, "The new token."), ...errors(400, 401, 403, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const issued = await issueToken(createDb(c.env.DB), { kind: "agent", name: req.name, pool: req.pool, userId: null, expiresAt: null });
      await audit(c, "token.issue", { target: issued.id, detail: { kind: "agent", name: req.name, pool: req.pool } });
      return c.json(issued, 201);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "get",
      path: "/agent-tokens",
      summary: "Agent tokens that are not revoked",
      responses: { 200: json(TokenList, "Newest first, never the tokens' text."), ...errors(401, 403) },
    }),
    async (c) => c.json({ tokens: (await listTokens(createDb(c.env.DB), "agent")).map(tokenView) }, 200),
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "delete",
      path: "/agent-tokens/{id}",
      summary: "Revoke an agent token",
      description: `${admin.description} Agents connected with it are disconnected at once (close code 4006) and cannot reconnect with it.`,
      request: { params: TokenParams },
      responses: { 204: { description: "Revoked." }, ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const db = createDb(c.env.DB);
      const token = await getToken(db, id);
      if (!token || token.kind !== "agent") throw new AppError("not_found", `no agent token ${id}`);
      await revokeToken(db, id, Date.now());
      await audit(c, "token.revoke", { target: id, detail: { kind: "agent", name: token.name, pool: token.pool } });
      await coordinatorFor(c.env, token.pool!).revokeToken(token.pool!, id);
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/api-tokens",
      summary: "Issue an API token acting as a user",
      description: `${user.description} The admin issues tokens for any user; a user issues its own, expiring no later than the token (or dashboard session) that asks. The token's text is shown only in this answer.`,
      request: { body: body(ApiTokenRequest) },
      responses: { 201: json(IssuedToken, "The new token."), ...errors(400, 401, 403, 404, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const principal = c.get("principal");
      const db = createDb(c.env.DB);
      if (principal.kind !== "admin" && principal.kind !== "user") throw new AppError("forbidden", "only users and the admin issue API tokens");
      let userId: string;
      if (principal.kind === "admin") {
        if (!req.user) throw new AppError("validation_failed", "user: name the user (id or name) the token acts as", "user");
        const target = await findUser(db, req.user);
        if (!target) throw new AppError("not_found", `no user ${req.user}`, "user");
        userId = target.id;
      } else {
        if (req.user && req.user !== principal.userId && req.user !== principal.name) throw new AppError("forbidden", "user: a user issues tokens for itself only; the admin issues them for others", "user");
        userId = principal.userId;
      }
      const asked = req.expires_in_s === undefined ? null : Date.now() + req.expires_in_s * 1000;
      // A token (or a session) that expires cannot mint one that outlives it.
      const limit = principal.kind === "user" ? principal.expiresAt : null;
      const expiresAt = limit === null ? asked : Math.min(asked ?? limit, limit);
      const issued = await issueToken(db, { kind: "user", name: req.name, pool: null, userId, expiresAt });
      await audit(c, "token.issue", { target: issued.id, detail: { kind: "user", name: req.name, user_id: userId, expires_at: issued.expires_at } });
      return c.json(issued, 201);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/api-tokens",
      summary: "API tokens that are not revoked: the caller's own (the admin: every user's)",
      responses: { 200: json(TokenList, "Newest first, never the tokens' text."), ...errors(401, 403) },
    }),
    async (c) => {
      const principal = c.get("principal");
      const rows = await listTokens(createDb(c.env.DB), "user", principal.kind === "user" ? principal.userId : undefined);
      return c.json({ tokens: rows.map(tokenView) }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "delete",
      path: "/api-tokens/{id}",
      summary: "Revoke an API token (one's own; the admin: any)",
      description: `${user.description} The next request with it is a 401, and dashboard sessions opened with it end.`,
      request: { params: TokenParams },
      responses: { 204: { description: "Revoked." }, ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const principal = c.get("principal");
      const db = createDb(c.env.DB);
      const token = await getToken(db, id);
      if (!token || token.kind !== "user" || (principal.kind === "user" && token.userId !== principal.userId)) throw new AppError("not_found", `no API token ${id}`);
      await revokeToken(db, id, Date.now());
      await audit(c, "token.revoke", { target: id, detail: { kind: "user", name: token.name, user_id: token.userId } });
      return c.body(null, 204);
    },
  );
