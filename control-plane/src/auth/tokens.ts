import { and, eq, isNull } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { tokens } from "../db/schema.ts";
import { newId } from "../ids.ts";
import type { Principal } from "./principal.ts";

const PREFIX = { agent: "gxa_", user: "gxu_" } as const;

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Issues a token; its plain text is returned once and only its hash is stored. */
export async function issueToken(db: Db, kind: "agent" | "user", name: string, pool: string | null) {
  const token = PREFIX[kind] + randomSecret();
  const row = { id: newId("tok"), kind, pool, name, hash: await sha256Hex(token), createdAt: Date.now() };
  await db.insert(tokens).values(row);
  return { id: row.id, token, kind, name, pool, created_at: new Date(row.createdAt).toISOString() };
}

/** Resolves a bearer token to who holds it, or null for an unknown or revoked token. */
export async function principalFor(db: Db, bearer: string, adminToken: string | undefined): Promise<Principal | null> {
  const hash = await sha256Hex(bearer);
  // Compare digests, not the secrets, so timing says nothing about the admin token.
  if (adminToken && hash === (await sha256Hex(adminToken))) return { kind: "admin", tokenId: "admin" };
  if (!bearer.startsWith(PREFIX.agent) && !bearer.startsWith(PREFIX.user)) return null;
  const row = await db.query.tokens.findFirst({ where: and(eq(tokens.hash, hash), isNull(tokens.revokedAt)) });
  if (!row) return null;
  if (row.kind === "agent") return row.pool ? { kind: "agent", tokenId: row.id, pool: row.pool } : null;
  return { kind: "user", tokenId: row.id };
}
