import { createRoute, z } from "@hono/zod-openapi";
import { ProjectName } from "../../../protocol/index.ts";
import { readableProjects, requireRole, standingIn } from "../auth/access.ts";
import { audit } from "../audit.ts";
import { createDb } from "../db/client.ts";
import { deleteMember, findUser, insertProject, listMembers, listProjects, memberView, projectView, putMember, updateProject, usageOf } from "../db/projects.ts";
import { AppError } from "../errors.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { loosened } from "../quotas.ts";
import { retentionDefaults } from "../retention/policy.ts";
import { settingsOf } from "../settings.ts";
import { MemberList, MemberPut, Project, ProjectCreate, ProjectList, ProjectPatch } from "../schemas.ts";
import { mustGetProject, noProject } from "./guards.ts";

const tags = ["projects"];
const admin = access("admin");
const user = access("admin", "user");
const ProjectParams = z.object({ project: ProjectName.clone().openapi({ param: { name: "project", in: "path" }, example: "default" }) });
const MemberParams = ProjectParams.extend({ user: z.string().min(1).max(100).openapi({ param: { name: "user", in: "path" }, description: "a user's id or name", example: "ada" }) });


/** Projects own jobs, datasets, artifacts, logs and secrets; members act on them by role. */
export const projectRoutes = router()
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "post",
      path: "/",
      summary: "Create a project",
      request: { body: body(ProjectCreate) },
      responses: { 201: json(Project, "The new project, with no members yet."), ...errors(400, 401, 403, 409, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const row = await insertProject(createDb(c.env.DB), { name: req.name, quotas: req.quotas, weight: req.weight, retention: {}, createdAt: Date.now() });
      if (!row) throw new AppError("conflict", `project ${req.name} exists`, "name");
      await audit(c, "project.create", { project: row.name, target: row.name, detail: { quotas: row.quotas, weight: row.weight } });
      return c.json(projectView(row, undefined, "admin", retentionDefaults(settingsOf(c.env))), 201);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/",
      summary: "The caller's projects (every project, for the admin)",
      responses: { 200: json(ProjectList, "Projects by name, each with its quotas and usage."), ...errors(401, 403) },
    }),
    async (c) => {
      const principal = c.get("principal");
      const db = createDb(c.env.DB);
      const rows = await listProjects(db, readableProjects(principal));
      const usage = await usageOf(db, rows.map((r) => r.name));
      return c.json({ projects: rows.map((r) => projectView(r, usage.get(r.name), standingIn(principal, r.name), retentionDefaults(settingsOf(c.env)))) }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{project}",
      summary: "A project, with its quotas and current usage",
      request: { params: ProjectParams },
      responses: { 200: json(Project, "The project."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const { project } = c.req.valid("param");
      const principal = c.get("principal");
      const db = createDb(c.env.DB);
      const { project: row, standing } = await mustGetProject(db, principal, project, "viewer");
      return c.json(projectView(row, (await usageOf(db, [project])).get(project), standing, retentionDefaults(settingsOf(c.env))), 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "patch",
      path: "/{project}",
      summary: "Change a project's quotas (owners lower them, the admin sets them), retention (owner) or weight (admin)",
      request: { params: ProjectParams, body: body(ProjectPatch) },
      responses: { 200: json(Project, "The project as changed."), ...errors(400, 401, 403, 404, 413) },
    }),
    async (c) => {
      const { project } = c.req.valid("param");
      const req = c.req.valid("json");
      const principal = c.get("principal");
      const db = createDb(c.env.DB);
      const { project: current, standing } = await mustGetProject(db, principal, project, "owner");
      if (req.weight !== undefined && standing !== "admin") throw new AppError("forbidden", "weight: only the admin sets a project's fair-share weight", "weight");
      const raised = req.quotas && standing !== "admin" ? loosened(current.quotas, req.quotas) : null;
      if (raised) throw new AppError("forbidden", `quotas.${raised}: an owner may lower the project's quotas; raising or removing one is the admin's`, `quotas.${raised}`);
      const row = await updateProject(db, project, req);
      if (!row) throw noProject(project)();
      await audit(c, "project.update", { project, target: project, detail: req });
      return c.json(projectView(row, (await usageOf(db, [project])).get(project), standing, retentionDefaults(settingsOf(c.env))), 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{project}/members",
      summary: "A project's members and their roles",
      request: { params: ProjectParams },
      responses: { 200: json(MemberList, "Members by name."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const { project } = c.req.valid("param");
      const db = createDb(c.env.DB);
      await mustGetProject(db, c.get("principal"), project, "viewer");
      return c.json({ members: (await listMembers(db, project)).map(memberView) }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "put",
      path: "/{project}/members/{user}",
      summary: "Add a member, or change a member's role (owner)",
      description: `${user.description} Roles: \`owner\` manages members and secrets, \`member\` submits, cancels, uploads and reads, \`viewer\` reads.`,
      request: { params: MemberParams, body: body(MemberPut) },
      responses: { 200: json(MemberList, "The project's members, as changed."), ...errors(400, 401, 403, 404, 409, 413) },
    }),
    async (c) => {
      const { project, user: who } = c.req.valid("param");
      const { role } = c.req.valid("json");
      const principal = c.get("principal");
      const db = createDb(c.env.DB);
      await mustGetProject(db, principal, project, "owner");
      const target = await findUser(db, who);
      if (!target) throw new AppError("not_found", `no user ${who}`, "user");
      // The last owner cannot step down: a project always has someone who can manage it.
      if (role !== "owner" && principal.kind === "user" && target.id === principal.userId && (await listMembers(db, project)).filter((m) => m.role === "owner").length <= 1) {
        throw new AppError("conflict", `role: ${target.name} is the last owner of ${project}; make another owner first`, "role");
      }
      await putMember(db, project, target.id, role, Date.now());
      await audit(c, "member.put", { project, target: target.name, detail: { role } });
      return c.json({ members: (await listMembers(db, project)).map(memberView) }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "delete",
      path: "/{project}/members/{user}",
      summary: "Remove a member (owner)",
      request: { params: MemberParams },
      responses: { 204: { description: "Removed." }, ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const { project, user: who } = c.req.valid("param");
      const principal = c.get("principal");
      requireRole(principal, project, "owner", noProject(project));
      const db = createDb(c.env.DB);
      const target = await findUser(db, who);
      const current = await listMembers(db, project);
      const entry = target && current.find((m) => m.userId === target.id);
      if (!target || !entry) throw new AppError("not_found", `${who} is not a member of ${project}`, "user");
      if (entry.role === "owner" && current.filter((m) => m.role === "owner").length <= 1 && principal.kind !== "admin") {
        throw new AppError("conflict", `${target.name} is the last owner of ${project}; make another owner first`, "user");
      }
      await deleteMember(db, project, target.id);
      await audit(c, "member.delete", { project, target: target.name, detail: { role: entry.role } });
      return c.body(null, 204);
    },
  );
