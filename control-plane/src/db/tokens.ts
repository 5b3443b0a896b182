import { and, desc, eq, isNull, type SQL } from "drizzle-orm";
import type { Db } from "./client.ts";
import { tokens, users } from "./schema.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** Live (unrevoked) tokens of a kind, newest first; of one user when `userId` is given. */
export function listTokens(db: Db, kind: "agent" | "user", userId?: string) {
  const where: SQL[] = [eq(tokens.kind, kind), isNull(tokens.revokedAt)];
  if (userId) where.push(eq(tokens.userId, userId));
  return db
    .select({ token: tokens, user: users.name })
    .from(tokens)
    .leftJoin(users, eq(users.id, tokens.userId))
    .where(and(...where))
    .orderBy(desc(tokens.createdAt));
}

export function getToken(db: Db, id: string) {
  return db.query.tokens.findFirst({ where: and(eq(tokens.id, id), isNull(tokens.revokedAt)) });
}

export function revokeToken(db: Db, id: string, now: number) {
  return db.update(tokens).set({ revokedAt: now }).where(and(eq(tokens.id, id), isNull(tokens.revokedAt)));
}

export const tokenView = ({ token: t, user }: { token: typeof tokens.$inferSelect; user: string | null }) => ({
  id: t.id,
  kind: t.kind,
  name: t.name,
  pool: t.pool,
  user_id: t.userId,
  user,
  created_at: iso(t.createdAt)!,
  last_used_at: iso(t.lastUsedAt),
  expires_at: iso(t.expiresAt),
});
