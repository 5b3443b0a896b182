import type { Db } from "../db/client.ts";
import { tokens } from "../db/schema.ts";
import { newId } from "../ids.ts";
import type { Principal } from "./principal.ts";
import type { Role } from "./roles.ts";

/** Token prefixes say what a secret is: an agent's, a user's API token, or a dashboard session. */
export const PREFIX = { agent: "gxa_", user: "gxu_", session: "gxs_" } as const;

/** `last_used_at` is written at most this often per token. */
const TOKEN_TOUCH_MS = 60_000;

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** Issues a token; its plain text is returned once and only its hash is stored. */
export async function issueToken(db: Db, t: { kind: "agent" | "user"; name: string; pool: string | null; userId: string | null; expiresAt: number | null }) {
  const token = PREFIX[t.kind] + randomSecret();
  const row = { id: newId("tok"), kind: t.kind, pool: t.pool, name: t.name, userId: t.userId, hash: await sha256Hex(token), createdAt: Date.now(), expiresAt: t.expiresAt };
  await db.insert(tokens).values(row);
  return { id: row.id, token, kind: t.kind, name: t.name, pool: t.pool, user_id: t.userId, created_at: iso(row.createdAt)!, expires_at: iso(row.expiresAt) };
}

/*
 * One round trip finds the token (or session), its user and the user's memberships: every
 * authenticated request pays for this read, so it is one statement, by a unique index.
 */
const MEMBERSHIPS = "(SELECT json_group_array(json_array(m.project, m.role)) FROM members m WHERE m.user_id = t.user_id)";
const SQL = {
  token:
    `SELECT t.id, t.kind, t.pool, t.user_id, u.name, t.expires_at, t.last_used_at, ${MEMBERSHIPS} ` +
    "FROM tokens t LEFT JOIN users u ON u.id = t.user_id WHERE t.hash = ?1 AND t.revoked_at IS NULL",
  // A session lives no longer than the token it was opened with.
  session:
    `SELECT s.id, s.token_id, t.user_id, u.name, min(s.expires_at, coalesce(t.expires_at, s.expires_at)), s.last_used_at, ${MEMBERSHIPS} ` +
    "FROM sessions s LEFT JOIN tokens t ON t.id = s.token_id LEFT JOIN users u ON u.id = t.user_id " +
    "WHERE s.hash = ?1 AND s.revoked_at IS NULL AND (s.token_id LIKE 'admin:%' OR (t.revoked_at IS NULL AND t.kind = 'user'))",
  touchToken: "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1",
  touchSession: "UPDATE sessions SET last_used_at = ?2 WHERE id = ?1",
} as const;

type TokenRow = [string, "agent" | "user", string | null, string | null, string | null, number | null, number | null, string];
type SessionRow = [string, string, string | null, string | null, number, number | null, string];

const rolesOf = (json: string) => new Map((JSON.parse(json) as [string, Role][]).filter(([p]) => p !== null));

const ADMIN_SESSION = "admin:";

/**
 * What an admin session records as its token: a digest of the admin token keyed by the
 * session's own secret, so the session ends when the admin token changes, and D1 holds
 * nothing that checks a guess at the admin token without that secret.
 */
export async function adminSessionTag(adminToken: string, sessionSecret: string): Promise<string> {
  return ADMIN_SESSION + (await sha256Hex(`${adminToken}\n${sessionSecret}`)).slice(0, 32);
}

/** What resolving a secret found, and the write that records its use (at most once a minute). */
export interface Resolved {
  principal: Principal;
  /** The session id, when the secret was a dashboard session's. */
  sessionId?: string;
  touch?: () => Promise<unknown>;
}

/**
 * Resolves a bearer secret (an admin, API or agent token, or a dashboard session) to who
 * holds it, or null for an unknown, revoked or expired one.
 */
export async function resolveSecret(db: Db, bearer: string, adminToken: string | undefined, now = Date.now()): Promise<Resolved | null> {
  const hash = await sha256Hex(bearer);
  // Compare digests, not the secrets, so timing says nothing about the admin token.
  if (adminToken && hash === (await sha256Hex(adminToken))) return { principal: { kind: "admin", tokenId: "admin", name: "admin" } };
  const d1 = db.$client;
  if (bearer.startsWith(PREFIX.session)) {
    const [r] = await d1.prepare(SQL.session).bind(hash).raw<SessionRow>();
    if (!r || r[4] <= now) return null;
    const touch = r[5] === null || now - r[5] >= TOKEN_TOUCH_MS ? () => d1.prepare(SQL.touchSession).bind(r[0], now).run() : undefined;
    if (r[1].startsWith(ADMIN_SESSION)) {
      // Opened with the admin token as it is now: rotating GRIDX_ADMIN_TOKEN ends the admin's sessions.
      return adminToken && r[1] === (await adminSessionTag(adminToken, bearer)) ? { principal: { kind: "admin", tokenId: "admin", name: "admin" }, sessionId: r[0], touch } : null;
    }
    if (!r[2] || !r[3]) return null;
    return { principal: { kind: "user", tokenId: r[1], userId: r[2], name: r[3], roles: rolesOf(r[6]), expiresAt: r[4] }, sessionId: r[0], touch };
  }
  if (!bearer.startsWith(PREFIX.agent) && !bearer.startsWith(PREFIX.user)) return null;
  const [r] = await d1.prepare(SQL.token).bind(hash).raw<TokenRow>();
  if (!r || (r[5] !== null && r[5] <= now)) return null;
  const touch = r[6] === null || now - r[6] >= TOKEN_TOUCH_MS ? () => d1.prepare(SQL.touchToken).bind(r[0], now).run() : undefined;
  if (r[1] === "agent") return r[2] ? { principal: { kind: "agent", tokenId: r[0], pool: r[2] }, touch } : null;
  if (!r[3] || !r[4]) return null;
  return { principal: { kind: "user", tokenId: r[0], userId: r[3], name: r[4], roles: rolesOf(r[7]), expiresAt: r[5] }, touch };
}
