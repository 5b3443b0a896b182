import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { call, type Api } from "./api.ts";
import { COOKIE_PATH, isHttps, type DashEnv } from "./session.ts";
import type { Viewer } from "./views/parts.tsx";

/** Remembers the project chosen in the switcher between pages; it names a project and grants nothing. */
const PROJECT_COOKIE = "gridx_project";

const cookieOptions = (c: Context) => ({ path: COOKIE_PATH, httpOnly: true, secure: isHttps(c), sameSite: "Strict" as const });

/**
 * The signed-in viewer, their projects (`GET /v1/projects`: their own; the admin's: all) and
 * the current one: `?project=` if given (empty: all projects), else the remembered one. A
 * project they cannot read is no choice, so the page shows all of theirs instead.
 */
export async function viewerOf(c: Context<DashEnv>, api: Api): Promise<Viewer> {
  const projects = (await call(api.v1.projects.$get())).projects.map((p) => ({ name: p.name, role: p.role }));
  const asked = c.req.query("project");
  const wanted = asked ?? getCookie(c, PROJECT_COOKIE);
  const project = projects.some((p) => p.name === wanted) ? wanted : undefined;
  if (asked !== undefined) {
    if (project) setCookie(c, PROJECT_COOKIE, project, cookieOptions(c));
    else forgetProject(c);
  }
  return { session: c.var.session, projects, project };
}

export function forgetProject(c: Context) {
  if (getCookie(c, PROJECT_COOKIE) !== undefined) deleteCookie(c, PROJECT_COOKIE, cookieOptions(c));
}
