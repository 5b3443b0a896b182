import { createRoute } from "@hono/zod-openapi";
import { issueToken } from "../auth/tokens.ts";
import { createDb } from "../db/client.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { AgentTokenRequest, ApiTokenRequest, IssuedToken } from "../schemas.ts";

const tags = ["tokens"];
/** Token issuing is for the operator (admin token) only; a token's text is shown once. */
const admin = access("admin");

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
      return c.json(await issueToken(createDb(c.env.DB), "agent", req.name, req.pool), 201);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "post",
      path: "/api-tokens",
      summary: "Issue an API token",
      description: `${admin.description} The token submits and reads jobs, workers and datasets; its text is shown only in this answer.`,
      request: { body: body(ApiTokenRequest) },
      responses: { 201: json(IssuedToken, "The new token."), ...errors(400, 401, 403, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      return c.json(await issueToken(createDb(c.env.DB), "user", req.name, null), 201);
    },
  );
