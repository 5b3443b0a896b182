import { createRoute, z } from "@hono/zod-openapi";
import { ProjectName, SecretName } from "../../../protocol/index.ts";
import { audit } from "../audit.ts";
import { createDb } from "../db/client.ts";
import { deleteSecret, listSecrets, putSecret, secretView } from "../db/secrets.ts";
import { AppError } from "../errors.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { Secret, SecretList, SecretValue } from "../schemas.ts";
import { SecretVault } from "../secrets/vault.ts";
import { mustGetProject } from "./guards.ts";

const tags = ["secrets"];
const user = access("admin", "user");
const ProjectParams = z.object({ project: ProjectName.clone().openapi({ param: { name: "project", in: "path" }, example: "default" }) });
const SecretParams = ProjectParams.extend({ name: SecretName.clone().openapi({ param: { name: "name", in: "path" }, example: "github-token" }) });

/**
 * Per-project secrets (repository credentials, and environment variables a job asks for).
 * Values go in and are never shown again: they are encrypted at rest and decrypted only into
 * the assignment of a job of the same project that names them. Owners write them; every
 * member sees their names.
 */
export const secretRoutes = router()
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{project}/secrets",
      summary: "List a project's secrets (names and dates, never values)",
      request: { params: ProjectParams },
      responses: { 200: json(SecretList, "The project's secrets, by name."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const { project } = c.req.valid("param");
      const db = createDb(c.env.DB);
      await mustGetProject(db, c.get("principal"), project, "viewer");
      const rows = await listSecrets(db, project);
      return c.json({ secrets: rows.map(secretView) }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "put",
      path: "/{project}/secrets/{name}",
      summary: "Store or replace a secret",
      description: `${user.description} For https repositories the value is a token or \`user:token\`; for ssh, a private key. It is sealed with AES-256-GCM under the Worker secret SECRETS_KEY (503 without it) and never shown again.`,
      request: { params: SecretParams, body: body(SecretValue) },
      responses: { 200: json(Secret, "The secret's name and dates."), ...errors(400, 401, 403, 404, 413) },
    }),
    async (c) => {
      const { project, name } = c.req.valid("param");
      const db = createDb(c.env.DB);
      await mustGetProject(db, c.get("principal"), project, "owner");
      const vault = await SecretVault.fromKey(c.env.SECRETS_KEY);
      const sealed = await vault.seal(project, name, c.req.valid("json").value);
      const row = await putSecret(db, { project, name, sealed, createdBy: c.get("principal").tokenId, now: Date.now() });
      await audit(c, "secret.put", { project, target: name });
      return c.json(secretView(row), 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "delete",
      path: "/{project}/secrets/{name}",
      summary: "Delete a secret",
      request: { params: SecretParams },
      responses: { 204: { description: "Deleted." }, ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const { project, name } = c.req.valid("param");
      const db = createDb(c.env.DB);
      await mustGetProject(db, c.get("principal"), project, "owner");
      if (!(await deleteSecret(db, project, name))) throw new AppError("not_found", `no secret ${name} in project ${project}`);
      await audit(c, "secret.delete", { project, target: name });
      return c.body(null, 204);
    },
  );
