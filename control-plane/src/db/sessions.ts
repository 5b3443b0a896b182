import { and, desc, eq, gt, isNull, like, or, type SQL } from "drizzle-orm";
import type { Db } from "./client.ts";
import { sessions, tokens, users } from "./schema.ts";

export type SessionRow = typeof sessions.$inferSelect;

/** The most sessions one list shows, newest first (a sign-in lasts hours, so this is many days of them). */
export const SESSION_LIST_LIMIT = 500;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function insertSession(db: Db, row: SessionRow) {
  return db.insert(sessions).values(row);
}

/** Not revoked, not expired, and opened with the admin token or an API token that still works: what resolveSecret admits. */
const live = (now: number): SQL =>
  and(
    isNull(sessions.revokedAt),
    gt(sessions.expiresAt, now),
    or(like(sessions.tokenId, "admin:%"), and(eq(tokens.kind, "user"), isNull(tokens.revokedAt), or(isNull(tokens.expiresAt), gt(tokens.expiresAt, now)))),
  )!;

function select(db: Db, where: SQL) {
  return db
    .select({ session: sessions, user: users.name })
    .from(sessions)
    .leftJoin(tokens, eq(tokens.id, sessions.tokenId))
    .leftJoin(users, eq(users.id, sessions.userId))
    .where(where);
}

/** Live sessions, newest first; one user's when `userId` is given. */
export function listSessions(db: Db, now: number, userId?: string) {
  return select(db, and(live(now), userId ? eq(sessions.userId, userId) : undefined)!)
    .orderBy(desc(sessions.createdAt))
    .limit(SESSION_LIST_LIMIT);
}

export async function getLiveSession(db: Db, id: string, now: number) {
  const [row] = await select(db, and(live(now), eq(sessions.id, id))!);
  return row;
}

/** Ends a session at once: the next request with its secret is refused. */
export function revokeSession(db: Db, id: string, now: number) {
  return db.update(sessions).set({ revokedAt: now }).where(and(eq(sessions.id, id), isNull(sessions.revokedAt)));
}

/** A session as the API shows it: never its secret or the secret's hash. */
export const sessionView = ({ session: s, user }: { session: SessionRow; user: string | null }, currentHash: string | null) => ({
  id: s.id,
  // Only admin sessions have no user.
  user: user ?? "admin",
  user_id: s.userId,
  created_at: iso(s.createdAt)!,
  last_used_at: iso(s.lastUsedAt),
  expires_at: iso(s.expiresAt)!,
  ip: s.ip,
  user_agent: s.userAgent,
  current: s.hash === currentHash,
});
