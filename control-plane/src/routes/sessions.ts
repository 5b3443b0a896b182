import { createRoute, z } from "@hono/zod-openapi";
import { PREFIX, sha256Hex } from "../auth/tokens.ts";
import { audit } from "../audit.ts";
import { createDb } from "../db/client.ts";
import { getLiveSession, listSessions, revokeSession, SESSION_LIST_LIMIT, sessionView } from "../db/sessions.ts";
import { AppError } from "../errors.ts";
import { bearerOf } from "../middleware/auth.ts";
import { access, errors, json, router } from "../openapi.ts";
import { SessionList } from "../schemas.ts";

const tags = ["tokens"];
const user = access("admin", "user");
const SessionParams = z.object({ id: z.string().min(1).max(64).openapi({ param: { name: "id", in: "path" }, example: "ses_01jd2x7k8m9n0p1q2r3s4t5v6w" }) });

/** The hash of the calling session's secret, when the request was made with one. */
const callerHash = async (bearer: string | null) => (bearer?.startsWith(PREFIX.session) ? sha256Hex(bearer) : null);

/**
 * Dashboard sessions: signing in at `/ui/login` exchanges a token for one. Lists never show a
 * session's secret; revoking one ends it on its next request.
 */
export const sessionRoutes = router()
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/",
      summary: "Live dashboard sessions: the caller's own (the admin: everyone's)",
      description: `${user.description} The newest ${SESSION_LIST_LIMIT}; a session that is revoked, expired, or whose token was revoked is not listed.`,
      responses: { 200: json(SessionList, "Newest first, never a session's secret."), ...errors(401, 403) },
    }),
    async (c) => {
      const principal = c.get("principal");
      const rows = await listSessions(createDb(c.env.DB), Date.now(), principal.kind === "user" ? principal.userId : undefined);
      const current = await callerHash(bearerOf(c));
      return c.json({ sessions: rows.map((r) => sessionView(r, current)) }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "delete",
      path: "/{id}",
      summary: "Revoke a dashboard session (one's own; the admin: any)",
      description: `${user.description} Its next request is refused, and the browser holding it is sent to sign in.`,
      request: { params: SessionParams },
      responses: { 204: { description: "Revoked." }, ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const principal = c.get("principal");
      const db = createDb(c.env.DB);
      const row = await getLiveSession(db, id, Date.now());
      // Another user's session does not exist, as far as this caller can tell.
      if (!row || (principal.kind === "user" && row.session.userId !== principal.userId)) throw new AppError("not_found", `no session ${id}`);
      await revokeSession(db, id, Date.now());
      await audit(c, "session.end", { target: id, detail: { user: sessionView(row, null).user } });
      return c.body(null, 204);
    },
  );
