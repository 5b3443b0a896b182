import { Hono } from "hono";
import { z } from "zod";
import { PoolName } from "../../../protocol/index.ts";
import { issueToken } from "../auth/tokens.ts";
import { createDb } from "../db/client.ts";
import type { AppEnv } from "../env.ts";
import { requireAuth } from "../middleware/auth.ts";
import { jsonBody } from "../middleware/validate.ts";

const TokenName = z.string().min(1, "name is empty").max(100);
const AgentTokenRequest = z.object({ pool: PoolName.default("default"), name: TokenName }).strict();
const ApiTokenRequest = z.object({ name: TokenName }).strict();

/** Token issuing is for the operator (admin token) only; a token's text is shown once. */
export const tokenRoutes = new Hono<AppEnv>()
  .use(requireAuth("admin"))
  .post("/agent-tokens", async (c) => {
    const body = await jsonBody(c, AgentTokenRequest);
    return c.json(await issueToken(createDb(c.env.DB), "agent", body.name, body.pool), 201);
  })
  .post("/api-tokens", async (c) => {
    const body = await jsonBody(c, ApiTokenRequest);
    return c.json(await issueToken(createDb(c.env.DB), "user", body.name, null), 201);
  });
