import { createRoute, z } from "@hono/zod-openapi";
import { ProjectName } from "../../../protocol/index.ts";
import { ownedProjects, requireRole } from "../auth/access.ts";
import type { Principal } from "../auth/principal.ts";
import { actorName } from "../auth/principal.ts";
import { audit } from "../audit.ts";
import { createDb, type Db } from "../db/client.ts";
import { countWebhooks, deleteWebhook, deliveryView, getWebhook, insertWebhook, listDeliveries, listWebhooks, webhookView, type WebhookRow } from "../db/webhooks.ts";
import { AppError } from "../errors.ts";
import { newId } from "../ids.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { SecretVault } from "../secrets/vault.ts";
import { dispatcherOf } from "../webhooks/poke.ts";
import { DeliveryPage, Webhook, WebhookCreate, WebhookCreated, WebhookList } from "../webhooks/schemas.ts";
import { webhookSettingsOf } from "../webhooks/settings.ts";
import { newSigningSecret, sealSigningSecret } from "../webhooks/signature.ts";
import { checkTarget } from "../webhooks/target.ts";
import { mustGetProject } from "./guards.ts";

const tags = ["webhooks"];
const user = access("admin", "user");
const IdParams = z.object({ id: z.string().min(1).max(64).openapi({ param: { name: "id", in: "path" }, example: "wh_01jd2x7k8m9n0p1q2r3s4t5v6w" }) });
const ListQuery = z.object({ project: ProjectName.optional() });
const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50).openapi({ type: "integer" }),
  cursor: z.string().max(64).optional().openapi({ description: "`next_cursor` of the previous page" }),
});

const EVERY_PROJECT = "webhooks for every project are the admin's; name a project";

/**
 * A webhook the caller manages: its project's owner, or the admin (the only one who sees
 * every-project webhooks). Anyone else gets the 404 of a webhook that does not exist, or,
 * as a lower member of its project, a 403 naming the role.
 */
async function mustGetWebhook(db: Db, principal: Principal, id: string): Promise<WebhookRow> {
  const missing = () => new AppError("not_found", `no webhook ${id}`);
  const hook = await getWebhook(db, id);
  if (!hook) throw missing();
  if (hook.project === null) {
    if (principal.kind !== "admin") throw missing();
  } else requireRole(principal, hook.project, "owner", missing);
  return hook;
}

/**
 * Webhooks: job events of a project (or, for the admin, of every project) POSTed as signed
 * JSON to a URL, retried with backoff (docs/webhooks.md). Owners manage their projects'.
 */
export const webhookRoutes = router()
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/",
      summary: "Create a webhook; its signing secret is shown only in this answer",
      description: `${user.description} The project's owner, or the admin (who alone may leave out \`project\`: every project). The url is refused (400) when it targets a loopback, private or link-local address the operator does not allow (WEBHOOK_ALLOW_TARGETS), or is plain http to a public one. 409 past WEBHOOK_MAX_PER_PROJECT; 503 without SECRETS_KEY, which seals the secret. Each delivery is a JSON POST of the job event with headers \`gridx-webhook-id\`, \`gridx-delivery-id\`, \`gridx-timestamp\` (unix seconds) and \`gridx-signature\`: \`v1=\` and the hex HMAC-SHA256, keyed with the secret, of \`<timestamp>.<body>\`; anything but a 2xx is retried with backoff for WEBHOOK_RETRY_FOR_H (docs/webhooks.md).`,
      request: { body: body(WebhookCreate) },
      responses: { 201: json(WebhookCreated, "The webhook, with its signing secret."), ...errors(400, 401, 403, 404, 409, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const principal = c.get("principal");
      const settings = webhookSettingsOf(c.env);
      const db = createDb(c.env.DB);
      if (req.project === undefined) {
        if (principal.kind !== "admin") throw new AppError("forbidden", `project: ${EVERY_PROJECT}`, "project");
      } else await mustGetProject(db, principal, req.project, "owner", "project");
      const target = checkTarget(req.url, settings.WEBHOOK_ALLOW_TARGETS);
      if (!target.ok) throw new AppError("validation_failed", target.reason, "url");
      const project = req.project ?? null;
      if (project !== null && (await countWebhooks(db, project)) >= settings.WEBHOOK_MAX_PER_PROJECT) {
        throw new AppError("conflict", `project ${project} has ${settings.WEBHOOK_MAX_PER_PROJECT} webhooks, the most it may (WEBHOOK_MAX_PER_PROJECT); delete one first`, "project");
      }
      const vault = await SecretVault.fromKey(c.env.SECRETS_KEY);
      // Before the webhook exists, so the dispatcher's cursor is older than any of its events.
      await dispatcherOf(c.env).watch();
      const now = Date.now();
      const id = newId("wh", now);
      const secret = newSigningSecret();
      const row: WebhookRow = { id, project, url: target.url.href, events: [...new Set(req.events)], sealedSecret: await sealSigningSecret(vault, id, secret), createdBy: actorName(principal), createdAt: now };
      await insertWebhook(db, row);
      await audit(c, "webhook.create", { project, target: id, detail: { url: row.url, events: row.events } });
      return c.json({ ...webhookView(row), secret }, 201);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/",
      summary: "The webhooks of the projects the caller owns (every one, for the admin)",
      request: { query: ListQuery },
      responses: { 200: json(WebhookList, "Webhooks, oldest first; never their secrets."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const { project } = c.req.valid("query");
      const principal = c.get("principal");
      const db = createDb(c.env.DB);
      if (project) await mustGetProject(db, principal, project, "owner", "project");
      const owned = principal.kind === "user" ? ownedProjects(principal) : null;
      const rows = await listWebhooks(db, { projects: owned, project });
      return c.json({ webhooks: rows.map(webhookView) }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}",
      summary: "A webhook (never its secret)",
      request: { params: IdParams },
      responses: { 200: json(Webhook, "The webhook."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => c.json(webhookView(await mustGetWebhook(createDb(c.env.DB), c.get("principal"), c.req.valid("param").id)), 200),
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "delete",
      path: "/{id}",
      summary: "Delete a webhook and its deliveries; nothing more is sent to it",
      request: { params: IdParams },
      responses: { 204: { description: "Deleted." }, ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const hook = await mustGetWebhook(db, c.get("principal"), c.req.valid("param").id);
      if (!(await deleteWebhook(db, hook.id))) throw new AppError("not_found", `no webhook ${hook.id}`);
      await audit(c, "webhook.delete", { project: hook.project, target: hook.id, detail: { url: hook.url } });
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}/deliveries",
      summary: "A webhook's deliveries, newest first: status, tries, the last answer",
      request: { params: IdParams, query: PageQuery },
      responses: { 200: json(DeliveryPage, "A page of deliveries; `next_cursor` is null on the last page."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const hook = await mustGetWebhook(db, c.get("principal"), c.req.valid("param").id);
      const page = await listDeliveries(db, hook.id, c.req.valid("query"));
      return c.json({ deliveries: page.deliveries.map(deliveryView), next_cursor: page.nextCursor }, 200);
    },
  );
