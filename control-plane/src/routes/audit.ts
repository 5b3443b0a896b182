import { createRoute, z } from "@hono/zod-openapi";
import { ProjectName } from "../../../protocol/index.ts";
import { ownedProjects } from "../auth/access.ts";
import { AUDIT_ACTIONS } from "../audit.ts";
import { auditView, listAudit } from "../db/audit.ts";
import { createDb } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { access, errors, json, router } from "../openapi.ts";
import { AuditPage } from "../schemas.ts";

const AuditQuery = z.object({
  project: ProjectName.optional(),
  actor: z.string().min(1).max(100).optional().openapi({ description: "a user's name, `admin`, or an agent token's id" }),
  action: z.enum(AUDIT_ACTIONS).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50).openapi({ type: "integer" }),
  cursor: z.string().max(64).optional().openapi({ description: "`next_cursor` of the previous page" }),
});

const user = access("admin", "user");

/** `GET /v1/audit`: the admin reads everything, an owner the events of the projects it owns. */
export const auditRoutes = router().openapi(
  createRoute({
    ...user,
    tags: ["projects"],
    method: "get",
    path: "/",
    summary: "Who did what, when and from where (admin; owners: their projects)",
    description: `${user.description} Token issue and revoke, users and memberships, secret writes and deletes, cancels, drains, probes and quota changes, newest first. Never a secret's or a token's value.`,
    request: { query: AuditQuery },
    responses: { 200: json(AuditPage, "A page of events; `next_cursor` is null on the last page."), ...errors(400, 401, 403) },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const principal = c.get("principal");
    let projects: string[] | null = null;
    if (principal.kind === "user") {
      projects = ownedProjects(principal);
      if (q.project && !projects.includes(q.project)) throw new AppError("forbidden", `project: reading project ${q.project}'s audit log needs the owner role there`, "project");
      if (projects.length === 0) throw new AppError("forbidden", "the audit log is for the admin and for project owners");
    }
    const page = await listAudit(createDb(c.env.DB), { ...q, projects });
    return c.json({ events: page.events.map(auditView), next_cursor: page.nextCursor }, 200);
  },
);
