/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import { AppError } from "../errors.ts";
import { ApiError, apiFor, call } from "./api.ts";
import { APP_CSS, APP_JS } from "./assets.ts";
import { adminPages } from "./pages/admin.tsx";
import { gridPages } from "./pages/grid.tsx";
import { jobPages } from "./pages/jobs.tsx";
import { projectPages } from "./pages/projects.tsx";
import { sessionPages } from "./pages/sessions.tsx";
import { workflowPages } from "./pages/workflows.tsx";
import { enc, page, statusStatus } from "./render.tsx";
import { PAGE_SCRIPTS } from "./scripts.ts";
import { dropCookie, openSession, requireSession, safeNext, sameOriginPosts, securityHeaders, sessionOf, wantsFragment, type DashEnv } from "./session.ts";
import { forgetProject } from "./viewer.ts";
import { LoginPage } from "./views/login.tsx";
import { Layout } from "./views/parts.tsx";

/** Paths served without a session: signing in and out, and the static assets. */
const PUBLIC_PATHS = new Set(["/ui/login", "/ui/logout", "/ui/assets/app.css", "/ui/assets/app.js", ...Object.keys(PAGE_SCRIPTS)]);

/**
 * The dashboard: server-rendered pages under `/ui` that call the API in-process with the
 * signed-in user's session, plus HTML fragments under `/ui/live` that the page script polls.
 */
export const dashboardRoutes = new Hono<DashEnv>();

// Browsers that open the bare origin land on the dashboard; API clients still get a JSON 404.
dashboardRoutes.use("/", async (c, next) => {
  if (c.req.method === "GET" && c.req.header("accept")?.includes("text/html")) return c.redirect("/ui", 302);
  return next();
});

const session = requireSession();
dashboardRoutes.use("/ui/*", securityHeaders(), sameOriginPosts(), async function sessionUnlessPublic(c, next) {
  return PUBLIC_PATHS.has(c.req.path) ? next() : session(c, next);
});

dashboardRoutes.get("/ui/assets/app.css", (c) => c.body(APP_CSS, 200, { "content-type": "text/css; charset=utf-8", "cache-control": "public, max-age=300" }));
dashboardRoutes.get("/ui/assets/app.js", (c) => c.body(APP_JS, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "public, max-age=300" }));
for (const [path, source] of Object.entries(PAGE_SCRIPTS)) {
  dashboardRoutes.get(path, (c) => c.body(source, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "public, max-age=300" }));
}

dashboardRoutes.get("/ui/login", (c) => page(c, <LoginPage next={safeNext(c.req.query("next"))} signedOut={c.req.query("signed_out") === "1"} />));

// Signing in exchanges the token for a session of its own; the cookie holds the session's secret, never the token.
dashboardRoutes.post("/ui/login", async (c) => {
  const form = await c.req.parseBody();
  const token = typeof form.token === "string" ? form.token.trim() : "";
  const next = safeNext(typeof form.next === "string" ? form.next : undefined);
  if (!token) return page(c, <LoginPage next={next} error="Enter a token." />, 400);
  const opened = await openSession(c, token);
  if (!opened.ok && opened.limited) {
    c.header("retry-after", String(opened.limited.retryAfterS));
    return page(c, <LoginPage next={next} error={`Too many failed sign-ins from this address: try again in ${opened.limited.retryAfterS} s.`} />, 429);
  }
  if (!opened.ok) {
    return page(c, <LoginPage next={next} error="That token was refused: it is not a valid API or admin token, or it has been revoked." />, 401);
  }
  return c.redirect(next, 303);
});

// Signing out ends the session server-side (through the API, so it is audited like any revoke), then drops the cookie.
dashboardRoutes.post("/ui/logout", async (c) => {
  const current = await sessionOf(c);
  if (current) {
    c.set("session", current);
    await call((await apiFor(c)).v1.sessions[":id"].$delete({ param: { id: enc(current.id) } }));
  }
  dropCookie(c);
  forgetProject(c);
  return c.redirect("/ui/login?signed_out=1", 303);
});

dashboardRoutes.route("/", gridPages);
dashboardRoutes.route("/", jobPages);
dashboardRoutes.route("/", workflowPages);
dashboardRoutes.route("/", projectPages);
dashboardRoutes.route("/", sessionPages);
dashboardRoutes.route("/", adminPages);

dashboardRoutes.get("/ui/*", (c) => page(c, <ErrorPage c={c} status={404} message={`There is no dashboard page at ${c.req.path}.`} />, 404));

const ErrorPage = ({ c, status, message }: { c: Context<DashEnv>; status: number; message: string }) => {
  const signedIn = c.get("session");
  return (
    <Layout title={status === 404 ? "Not found" : "Error"} viewer={signedIn && { session: signedIn, projects: [], project: undefined }}>
      <h1>{status === 404 ? "Not found" : "Something went wrong"}</h1>
      <p class="error" role="alert">
        {message}
      </p>
      <p>
        <a href="/ui">Back to the overview</a>
      </p>
    </Layout>
  );
};

dashboardRoutes.onError((err, c) => {
  const status = err instanceof ApiError ? err.status : err instanceof AppError ? err.status : 500;
  if (status === 401) {
    dropCookie(c);
    if (wantsFragment(c)) return c.text("sign in again", 401);
    return c.redirect(c.req.method === "GET" ? `/ui/login?next=${enc(c.req.path)}` : "/ui/login", 303);
  }
  if (status === 500) console.error(`dashboard ${c.req.method} ${c.req.path} failed`, err);
  const message = status === 500 ? "The dashboard hit an internal error; it has been logged." : err.message;
  if (wantsFragment(c)) return c.text(message, statusStatus(status));
  return page(c, <ErrorPage c={c} status={status} message={message} />, statusStatus(status));
});
