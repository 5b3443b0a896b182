/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Role } from "../../auth/roles.ts";
import { apiFor, call } from "../api.ts";
import { enc, flashFrom, orExplain, page } from "../render.tsx";
import type { DashEnv } from "../session.ts";
import { viewerOf } from "../viewer.ts";
import type { DoneCode, Flash } from "../views/parts.tsx";
import { projectHref, ProjectPage, ProjectsPage } from "../views/projects.tsx";

async function renderProjectPage(c: Context<DashEnv>, flash: Flash, status: ContentfulStatusCode = 200) {
  const api = await apiFor(c);
  const param = { project: enc(c.req.param("project") ?? "") };
  // A project the viewer is not a member of is a 404 from the API, and so the dashboard's 404 page.
  const [viewer, project, { members }, { secrets }] = await Promise.all([
    viewerOf(c, api),
    call(api.v1.projects[":project"].$get({ param })),
    call(api.v1.projects[":project"].members.$get({ param })),
    call(api.v1.projects[":project"].secrets.$get({ param })),
  ]);
  return page(c, <ProjectPage viewer={viewer} project={project} members={members} secrets={secrets} flash={flash} />, status);
}

/**
 * Runs one owner's change to a project through the API (which checks the role again), then
 * goes back to the project page saying it is done, or shows it with the API's refusal.
 */
function change(c: Context<DashEnv>, done: DoneCode, what: string, work: () => Promise<unknown>) {
  return orExplain(
    async () => {
      await work();
      return c.redirect(`${projectHref(c.req.param("project") ?? "")}?done=${done}`, 303);
    },
    (message, status) => renderProjectPage(c, { error: `Could not ${what}: ${message}` }, status),
  );
}

const field = (body: Record<string, unknown>, name: string) => (typeof body[name] === "string" ? (body[name] as string).trim() : "");

/** Projects: each one's quotas and usage, members and secrets; owners and the admin manage the last two here. */
export const projectPages = new Hono<DashEnv>();

// The switcher submits here with `?project=`; that project's page is what it asks for.
projectPages.get("/ui/projects", async (c) => {
  const viewer = await viewerOf(c, await apiFor(c));
  if (c.req.query("project") && viewer.project) return c.redirect(projectHref(viewer.project), 303);
  return page(c, <ProjectsPage viewer={viewer} projects={viewer.projects} />);
});

projectPages.get("/ui/projects/:project", (c) => renderProjectPage(c, flashFrom(c)));

projectPages.post("/ui/projects/:project/members", async (c) => {
  const body = await c.req.parseBody();
  const api = await apiFor(c);
  return change(c, "member_saved", "save the member", () =>
    call(api.v1.projects[":project"].members[":user"].$put({ param: { project: enc(c.req.param("project")), user: enc(field(body, "user")) }, json: { role: field(body, "role") as Role } })),
  );
});

projectPages.post("/ui/projects/:project/members/:user/remove", async (c) => {
  const api = await apiFor(c);
  return change(c, "member_removed", "remove the member", () =>
    call(api.v1.projects[":project"].members[":user"].$delete({ param: { project: enc(c.req.param("project")), user: enc(c.req.param("user")) } })),
  );
});

// The value goes to the API and nowhere else: a refused save shows the form empty again.
projectPages.post("/ui/projects/:project/secrets", async (c) => {
  const body = await c.req.parseBody();
  const api = await apiFor(c);
  const value = typeof body.value === "string" ? body.value : "";
  return change(c, "secret_saved", "save the secret", () =>
    call(api.v1.projects[":project"].secrets[":name"].$put({ param: { project: enc(c.req.param("project")), name: enc(field(body, "name")) }, json: { value } })),
  );
});

projectPages.post("/ui/projects/:project/secrets/:name/delete", async (c) => {
  const api = await apiFor(c);
  return change(c, "secret_deleted", "delete the secret", () =>
    call(api.v1.projects[":project"].secrets[":name"].$delete({ param: { project: enc(c.req.param("project")), name: enc(c.req.param("name")) } })),
  );
});
