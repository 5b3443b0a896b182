import { createRoute, z } from "@hono/zod-openapi";
import { PoolName } from "../../../protocol/index.ts";
import { actorName } from "../auth/principal.ts";
import { audit } from "../audit.ts";
import { callView, deleteAutoscaleHook, getAutoscaleHook, putAutoscaleHook, recentCalls, type AutoscaleHookRow } from "../db/autoscale.ts";
import { createDb } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { AUTOSCALE_KINDS } from "../fleet/autoscale.ts";
import { newId } from "../ids.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { SecretVault } from "../secrets/vault.ts";
import { settingsOf } from "../settings.ts";
import { webhookSettingsOf } from "../webhooks/settings.ts";
import { newSigningSecret, openSigningSecret, sealSigningSecret } from "../webhooks/signature.ts";
import { checkTarget, MAX_URL_CHARS } from "../webhooks/target.ts";

const tags = ["pools"];
const admin = access("admin");
const Params = z.object({ pool: PoolName.clone().openapi({ param: { name: "pool", in: "path" }, example: "gpu" }) });

/** Calls shown by GET, newest first. */
const SHOWN_CALLS = 20;

const Timestamp = z.iso.datetime().openapi({ example: "2026-12-02T10:00:00.000Z" });

export const AutoscaleHookPut = z
  .object({
    url: z.string().min(1, "url is empty").max(MAX_URL_CHARS).openapi({ description: "https; plain http only to a loopback or private target the operator allows (WEBHOOK_ALLOW_TARGETS)", example: "https://scaler.example.com/gridx" }),
    secret: z
      .string()
      .min(16, "secret must be at least 16 characters")
      .max(256)
      .optional()
      .openapi({ description: "the signing secret to use; absent: the hook's secret is kept, or a new one is made (and shown once) for a new hook" }),
  })
  .strict()
  .openapi("AutoscaleHookPut");

const AutoscaleCall = z
  .object({
    id: z.string().openapi({ description: "also the `gridx-delivery-id` header and the body's `call_id`" }),
    kind: z.enum(AUTOSCALE_KINDS),
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.number().int(),
    last_status: z.number().int().nullable().openapi({ description: "the HTTP status of the last try; null when none came" }),
    last_error: z.string().nullable(),
    next_at: Timestamp.nullable().openapi({ description: "when a pending call is tried next" }),
    created_at: Timestamp,
    finished_at: Timestamp.nullable(),
    body: z.record(z.string(), z.unknown()).openapi({ description: "what the hook was sent (docs/autoscaling.md)" }),
  })
  .openapi("AutoscaleCall");

const AutoscaleHook = z
  .object({
    pool: z.string(),
    id: z.string().openapi({ description: "the `gridx-webhook-id` header of its calls", example: "ash_01jd2x7k8m9n0p1q2r3s4t5v6w" }),
    url: z.string(),
    created_by: z.string(),
    created_at: Timestamp,
    updated_at: Timestamp,
    settings: z.object({ scale_up_after_s: z.number(), scale_down_after_s: z.number(), cooldown_s: z.number() }).openapi({ description: "SCALE_UP_AFTER_S, SCALE_DOWN_AFTER_S, SCALE_COOLDOWN_S" }),
    calls: z.array(AutoscaleCall).openapi({ description: `the latest ${SHOWN_CALLS} calls, newest first` }),
  })
  .openapi("AutoscaleHook");

const AutoscaleHookSet = AutoscaleHook.omit({ calls: true })
  .extend({ secret: z.string().optional().openapi({ description: "the signing secret, only when this answer made it" }) })
  .openapi("AutoscaleHookSet");

const iso = (ms: number) => new Date(ms).toISOString();

function hookView(row: AutoscaleHookRow, env: Env) {
  const s = settingsOf(env);
  return {
    pool: row.pool,
    id: row.id,
    url: row.url,
    created_by: row.createdBy,
    created_at: iso(row.createdAt),
    updated_at: iso(row.updatedAt),
    settings: { scale_up_after_s: s.SCALE_UP_AFTER_S, scale_down_after_s: s.SCALE_DOWN_AFTER_S, cooldown_s: s.SCALE_COOLDOWN_S },
  };
}

/** A pool's autoscaling hook (docs/autoscaling.md): set, shown with its latest calls, removed. Admin only. */
export const autoscaleRoutes = router()
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "put",
      path: "/{pool}/autoscale",
      summary: "Set a pool's autoscaling hook (admin): signed scale_up and scale_down calls to a URL",
      description: `${admin.description} The url is checked as webhooks' are (WEBHOOK_ALLOW_TARGETS). A new hook without a \`secret\` gets one, shown only in this answer; an existing one keeps its secret unless a new one is given. Calls are JSON POSTs signed as webhook deliveries are (\`gridx-signature\`: \`v1=\` and the hex HMAC-SHA256 of \`<timestamp>.<body>\`); 503 without SECRETS_KEY.`,
      request: { params: Params, body: body(AutoscaleHookPut) },
      responses: { 200: json(AutoscaleHookSet, "The hook as stored; `secret` when this answer made it."), ...errors(400, 401, 403, 409, 413) },
    }),
    async (c) => {
      const { pool } = c.req.valid("param");
      const req = c.req.valid("json");
      const target = checkTarget(req.url, webhookSettingsOf(c.env).WEBHOOK_ALLOW_TARGETS);
      if (!target.ok) throw new AppError("validation_failed", target.reason, "url");
      const db = createDb(c.env.DB);
      const vault = await SecretVault.fromKey(c.env.SECRETS_KEY);
      const existing = await getAutoscaleHook(db, pool);
      const now = Date.now();
      const id = existing?.id ?? newId("ash", now);
      const made = req.secret === undefined && !existing ? newSigningSecret() : undefined;
      const secret = req.secret ?? made;
      const sealedSecret = secret === undefined ? existing!.sealedSecret : await sealSigningSecret(vault, id, secret);
      // A kept secret must still open: one sealed under an older SECRETS_KEY could never sign.
      const opens = secret !== undefined || (await openSigningSecret(vault, id, sealedSecret).then(() => true, () => false));
      if (!opens) throw new AppError("conflict", "the hook's secret does not open under SECRETS_KEY; give a new one", "secret");
      const row: AutoscaleHookRow = { pool, id, url: target.url.href, sealedSecret, createdBy: existing?.createdBy ?? actorName(c.get("principal")), createdAt: existing?.createdAt ?? now, updatedAt: now };
      await putAutoscaleHook(db, row);
      await audit(c, "pool.autoscale", { target: pool, detail: { url: row.url, secret: made ? "generated" : req.secret ? "given" : "kept" } });
      return c.json({ ...hookView(row, c.env), ...(made ? { secret: made } : {}) }, 200);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "get",
      path: "/{pool}/autoscale",
      summary: "A pool's autoscaling hook (admin), its settings and its latest calls with how each went",
      request: { params: Params },
      responses: { 200: json(AutoscaleHook, "The hook (never its secret) and its latest calls."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const { pool } = c.req.valid("param");
      const db = createDb(c.env.DB);
      const hook = await getAutoscaleHook(db, pool);
      if (!hook) throw new AppError("not_found", `pool ${pool} has no autoscaling hook`);
      const calls = await recentCalls(db, pool, SHOWN_CALLS);
      return c.json({ ...hookView(hook, c.env), calls: calls.map(callView) }, 200);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "delete",
      path: "/{pool}/autoscale",
      summary: "Remove a pool's autoscaling hook and its calls (admin); nothing more is sent",
      request: { params: Params },
      responses: { 204: { description: "Removed." }, ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const { pool } = c.req.valid("param");
      if (!(await deleteAutoscaleHook(createDb(c.env.DB), pool))) throw new AppError("not_found", `pool ${pool} has no autoscaling hook`);
      await audit(c, "pool.autoscale_delete", { target: pool });
      return c.body(null, 204);
    },
  );
