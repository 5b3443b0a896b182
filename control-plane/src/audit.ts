import type { Context } from "hono";
import { actorName, type Principal } from "./auth/principal.ts";
import { insertAudit } from "./db/audit.ts";
import { createDb, type Db } from "./db/client.ts";
import type { AppEnv } from "./env.ts";
import { newId } from "./ids.ts";

/** Every action the audit log records. */
export const AUDIT_ACTIONS = [
  "token.issue",
  "token.revoke",
  "user.create",
  "project.create",
  "project.update",
  "member.put",
  "member.delete",
  "secret.put",
  "secret.delete",
  "job.cancel",
  "job.rerun",
  "job.delete",
  "job.exec",
  "array.cancel",
  "worker.drain",
  "worker.undrain",
  "worker.delete",
  "worker.probe",
  "pool.sandbox",
  "pool.autoscale",
  "pool.autoscale_delete",
  "pool.upgrade",
  "pool.broadcast",
  "agent_bundle.publish",
  "webhook.create",
  "webhook.delete",
  "schedule.create",
  "schedule.update",
  "schedule.delete",
  "schedule.pause",
  "schedule.resume",
  "session.start",
  "session.end",
  "backup.create",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** The client's address as Cloudflare gives it (`CF-Connecting-IP`); null where nothing says. */
export const clientAddress = (c: Context) => c.req.header("cf-connecting-ip") ?? null;

/** What an audit event is about; `detail` holds names and numbers only, never a secret's or a token's value. */
export type AuditWhat = { project?: string | null; target?: string | null; detail?: Record<string, unknown> };

/** Records who did what, in the same request as the action, after it succeeded. */
export async function audit(c: Context<AppEnv>, action: AuditAction, what: AuditWhat = {}) {
  await auditAs(createDb(c.env.DB), c.get("principal"), clientAddress(c), action, what);
}

/** The same record with the actor named explicitly, for requests that carry no API principal (the dashboard's sign-in). */
export async function auditAs(db: Db, actor: Principal, ip: string | null, action: AuditAction, what: AuditWhat = {}) {
  const now = Date.now();
  await insertAudit(db, {
    id: newId("ev", now),
    at: now,
    actor: actorName(actor),
    action,
    project: what.project ?? null,
    target: what.target ?? null,
    detail: what.detail ?? null,
    ip,
  });
}
