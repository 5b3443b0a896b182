import { Hono } from "hono";
import { PROTOCOL_VERSION } from "../../../protocol/index.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { requireAuth } from "../middleware/auth.ts";

/** Agents dial in here; the socket is handed to the coordinator of the token's pool. */
export const agentRoutes = new Hono<AppEnv>().get("/connect", requireAuth("agent"), async (c) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new AppError("validation_failed", "this route takes a WebSocket upgrade (Upgrade: websocket)", "Upgrade");
  }
  const asked = c.req.query("protocol");
  if (asked !== undefined && asked !== String(PROTOCOL_VERSION)) {
    throw new AppError("protocol_version_unsupported", `this control plane speaks protocol ${PROTOCOL_VERSION}, the agent speaks ${asked}: upgrade the agent`);
  }
  const principal = c.get("principal");
  if (principal.kind !== "agent") throw new AppError("forbidden", "agent tokens only");
  const headers = new Headers(c.req.raw.headers);
  headers.delete("authorization");
  headers.set("x-gridx-pool", principal.pool);
  headers.set("x-gridx-token-id", principal.tokenId);
  return coordinatorFor(c.env, principal.pool).fetch(new Request(c.req.url, { headers }));
});
