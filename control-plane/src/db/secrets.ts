import { and, asc, eq } from "drizzle-orm";
import { inJson, type Db } from "./client.ts";
import { secrets } from "./schema.ts";

type SecretRow = typeof secrets.$inferSelect;

const iso = (ms: number) => new Date(ms).toISOString();

/** What the API shows of a secret: never its value. */
export const secretView = (row: Omit<SecretRow, "sealed">) => ({ project: row.project, name: row.name, created_at: iso(row.createdAt), updated_at: iso(row.updatedAt) });

export async function putSecret(db: Db, row: { project: string; name: string; sealed: string; createdBy: string; now: number }) {
  const [stored] = await db
    .insert(secrets)
    .values({ project: row.project, name: row.name, sealed: row.sealed, createdBy: row.createdBy, createdAt: row.now, updatedAt: row.now })
    .onConflictDoUpdate({ target: [secrets.project, secrets.name], set: { sealed: row.sealed, updatedAt: row.now } })
    .returning();
  return stored!;
}

export function listSecrets(db: Db, project: string) {
  return db
    .select({ project: secrets.project, name: secrets.name, createdBy: secrets.createdBy, createdAt: secrets.createdAt, updatedAt: secrets.updatedAt })
    .from(secrets)
    .where(eq(secrets.project, project))
    .orderBy(asc(secrets.name));
}

/** Several of a project's secrets by name, in one statement. */
export function secretsByNames(db: Db, project: string, names: string[]): Promise<SecretRow[]> {
  return db
    .select()
    .from(secrets)
    .where(and(eq(secrets.project, project), inJson(secrets.name, names)));
}

export async function deleteSecret(db: Db, project: string, name: string): Promise<boolean> {
  const gone = await db.delete(secrets).where(and(eq(secrets.project, project), eq(secrets.name, name))).returning({ name: secrets.name });
  return gone.length > 0;
}
