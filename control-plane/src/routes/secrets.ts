import { Hono } from "hono";
import { z } from "zod";
import { ProjectName, SecretName } from "../../../protocol/index.ts";
import { createDb } from "../db/client.ts";
import { deleteSecret, listSecrets, putSecret, secretView } from "../db/secrets.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { requireAuth } from "../middleware/auth.ts";
import { jsonBody, parseWith } from "../middleware/validate.ts";
import { MAX_SECRET_CHARS, SecretVault } from "../secrets/vault.ts";

const SecretValue = z
  .object({ value: z.string().min(1, "value is empty").max(MAX_SECRET_CHARS, `value is at most ${MAX_SECRET_CHARS} characters`) })
  .strict();

/**
 * Per-project secrets (repository credentials for repo jobs). Values go in and are never
 * shown again: they are encrypted at rest and decrypted only into the assignment of a job
 * that names them.
 */
export const secretRoutes = new Hono<AppEnv>()
  .use(requireAuth("admin", "user"))
  .get("/:project/secrets", async (c) => {
    const project = parseWith(ProjectName, c.req.param("project"), "project");
    const rows = await listSecrets(createDb(c.env.DB), project);
    return c.json({ secrets: rows.map(secretView) });
  })
  .put("/:project/secrets/:name", async (c) => {
    const project = parseWith(ProjectName, c.req.param("project"), "project");
    const name = parseWith(SecretName, c.req.param("name"), "name");
    const { value } = await jsonBody(c, SecretValue);
    const vault = await SecretVault.fromKey(c.env.SECRETS_KEY);
    const row = await putSecret(createDb(c.env.DB), { project, name, sealed: await vault.seal(project, name, value), createdBy: c.get("principal").tokenId, now: Date.now() });
    return c.json(secretView(row), 200);
  })
  .delete("/:project/secrets/:name", async (c) => {
    const project = parseWith(ProjectName, c.req.param("project"), "project");
    const name = parseWith(SecretName, c.req.param("name"), "name");
    if (!(await deleteSecret(createDb(c.env.DB), project, name))) throw new AppError("not_found", `no secret ${name} in project ${project}`);
    return c.body(null, 204);
  });
