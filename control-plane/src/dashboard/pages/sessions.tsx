/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import { apiFor, call } from "../api.ts";
import { enc, flashFrom, page } from "../render.tsx";
import { dropCookie, type DashEnv } from "../session.ts";
import { forgetProject, viewerOf } from "../viewer.ts";
import { SessionsPage } from "../views/sessions.tsx";

/** The viewer's dashboard sessions (`GET /v1/sessions`), each of which can be signed out. */
export const sessionPages = new Hono<DashEnv>();

sessionPages.get("/ui/sessions", async (c) => {
  const api = await apiFor(c);
  const [viewer, { sessions }] = await Promise.all([viewerOf(c, api), call(api.v1.sessions.$get())]);
  return page(c, <SessionsPage viewer={viewer} sessions={sessions} now={Date.now()} flash={flashFrom(c)} />);
});

// Another user's session is a 404 from the API, and so the dashboard's 404 page.
sessionPages.post("/ui/sessions/:id/revoke", async (c) => {
  const id = c.req.param("id");
  await call((await apiFor(c)).v1.sessions[":id"].$delete({ param: { id: enc(id) } }));
  if (id !== c.var.session.id) return c.redirect("/ui/sessions?done=session_revoked", 303);
  dropCookie(c);
  forgetProject(c);
  return c.redirect("/ui/login?signed_out=1", 303);
});
