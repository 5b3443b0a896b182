import { createRoute } from "@hono/zod-openapi";
import { audit } from "../audit.ts";
import { createDb } from "../db/client.ts";
import { findUser, insertUser, listUsers, userView } from "../db/projects.ts";
import { AppError } from "../errors.ts";
import { newId } from "../ids.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { Me, User, UserCreate, UserList } from "../schemas.ts";

const tags = ["projects"];
const admin = access("admin");
const user = access("admin", "user");

/** Users (identities that API tokens act as) and the caller's own standing. */
export const userRoutes = router()
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "post",
      path: "/users",
      summary: "Create a user",
      description: `${admin.description} A user is an identity: issue it API tokens and add it to projects.`,
      request: { body: body(UserCreate) },
      responses: { 201: json(User, "The new user."), ...errors(400, 401, 403, 409, 413) },
    }),
    async (c) => {
      const { name } = c.req.valid("json");
      const row = await insertUser(createDb(c.env.DB), { id: newId("u"), name, createdAt: Date.now() });
      if (!row) throw new AppError("conflict", `a user named ${name} exists`, "name");
      await audit(c, "user.create", { target: row.name, detail: { user_id: row.id } });
      return c.json(userView(row), 201);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "get",
      path: "/users",
      summary: "Every user",
      responses: { 200: json(UserList, "Users by name."), ...errors(401, 403) },
    }),
    async (c) => c.json({ users: (await listUsers(createDb(c.env.DB))).map(userView) }, 200),
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/me",
      summary: "Who the token acts as, and its projects",
      responses: { 200: json(Me, "The caller: the admin, or a user with its roles."), ...errors(401, 403) },
    }),
    async (c) => {
      const p = c.get("principal");
      if (p.kind !== "user") return c.json({ kind: "admin" as const, user: null, projects: [] }, 200);
      const row = await findUser(createDb(c.env.DB), p.userId);
      const projects = [...p.roles].map(([project, role]) => ({ project, role })).sort((a, b) => a.project.localeCompare(b.project));
      return c.json({ kind: "user" as const, user: row ? userView(row) : null, projects }, 200);
    },
  );
