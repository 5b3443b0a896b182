import { randomSecret, sha256Hex } from "../auth/tokens.ts";
import { newId } from "../ids.ts";
import type { Db } from "./client.ts";
import { portLinks, portSessions } from "./schema.ts";

/** Secret prefixes: a one-time link's, and the port session cookie's. */
const PREFIX = { link: "gxl_", session: "gxp_" } as const;

/** Who made a link (and so owns the session it opens): the token's id, `admin` for the admin token. */
export interface PortGrant {
  jobId: string;
  port: number;
  tokenId: string;
  createdBy: string;
}

/** A one-time link's secret, valid `ttlS`; only its hash is stored. */
export async function createPortLink(db: Db, grant: PortGrant, ttlS: number, now: number): Promise<{ token: string; expiresAt: number }> {
  const token = PREFIX.link + randomSecret();
  const expiresAt = now + ttlS * 1000;
  await db.insert(portLinks).values({ id: newId("pl", now), hash: await sha256Hex(token), ...grant, createdAt: now, expiresAt });
  return { token, expiresAt };
}

/** Uses a link up, in one statement, so it opens one session however many requests race with it; null when unknown, used or expired. */
export async function consumePortLink(db: Db, token: string, now: number): Promise<PortGrant | null> {
  const row = await db.$client
    .prepare("UPDATE port_links SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING job_id, port, token_id, created_by")
    .bind(await sha256Hex(token), now)
    .first<{ job_id: string; port: number; token_id: string; created_by: string }>();
  return row ? { jobId: row.job_id, port: row.port, tokenId: row.token_id, createdBy: row.created_by } : null;
}

/** A port session's cookie secret; the session ends after `idleTimeoutS` without a request. */
export async function createPortSession(db: Db, grant: PortGrant, idleTimeoutS: number, now: number): Promise<string> {
  const token = PREFIX.session + randomSecret();
  await db.insert(portSessions).values({ id: newId("ps", now), hash: await sha256Hex(token), ...grant, idleTimeoutS, createdAt: now, lastUsedAt: now });
  return token;
}

// Live while used within its idle timeout, while the token that made its link is (revoking that
// token ends it), and while that token's user may still read the job's project.
const SESSION_SQL =
  "SELECT s.id, s.job_id, s.port, s.last_used_at, s.idle_timeout_s FROM port_sessions s LEFT JOIN tokens t ON t.id = s.token_id " +
  "WHERE s.hash = ?1 AND s.last_used_at + s.idle_timeout_s * 1000 > ?2 AND (s.token_id = 'admin' OR (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2) " +
  "AND EXISTS (SELECT 1 FROM members m JOIN jobs j ON j.id = s.job_id WHERE m.user_id = t.user_id AND m.project = j.project)))";

/**
 * The job and port a live session cookie opens, and the write that records its use (at most
 * every quarter of its idle timeout, and at least once a minute), or null.
 */
export async function portSessionOf(db: Db, token: string, now: number): Promise<{ jobId: string; port: number; touch?: () => Promise<unknown> } | null> {
  if (!token.startsWith(PREFIX.session)) return null;
  const row = await db.$client.prepare(SESSION_SQL).bind(await sha256Hex(token), now).first<{ id: string; job_id: string; port: number; last_used_at: number; idle_timeout_s: number }>();
  if (!row) return null;
  const every = Math.min(60_000, (row.idle_timeout_s * 1000) / 4);
  const touch = now - row.last_used_at >= every ? () => db.$client.prepare("UPDATE port_sessions SET last_used_at = ?2 WHERE id = ?1").bind(row.id, now).run() : undefined;
  return { jobId: row.job_id, port: row.port, touch };
}
