import { AwsClient } from "aws4fetch";
import { LATEST_MIGRATION } from "../db/migrations.ts";
import type { Bindings } from "../env.ts";
import { SecretVault } from "../secrets/vault.ts";
import { SettingsSchema } from "../settings.ts";

/** One check of `GET /health?deep=1`: what it looked at and, when it failed, the setting to fix. */
export interface HealthCheck {
  name: "settings" | "admin_token" | "secrets_key" | "s3" | "r2_binding" | "migrations";
  ok: boolean;
  message: string;
}

/** How long the S3 endpoint has to answer the check's signed request. */
const S3_CHECK_MS = 5000;
/** Shorter than this, GRIDX_ADMIN_TOKEN is guessable. */
const ADMIN_TOKEN_MIN_CHARS = 16;

const pass = (name: HealthCheck["name"], message: string): HealthCheck => ({ name, ok: true, message });
const fail = (name: HealthCheck["name"], message: string): HealthCheck => ({ name, ok: false, message });

/**
 * Every setting a deployment needs, checked for real: the vars parse, the admin token and the
 * secrets key are set and well-formed, the S3 keys are accepted by the endpoint (a signed HEAD of
 * the bucket), the R2 binding answers, and D1 has this build's migrations. Never throws: a check
 * that cannot run fails, naming why.
 */
export async function deepHealth(env: Bindings): Promise<HealthCheck[]> {
  const settings = SettingsSchema.safeParse(env);
  const checks: HealthCheck[] = [
    settings.success ? pass("settings", "every var parses") : fail("settings", `${settings.error.issues[0]?.path.join(".")}: ${settings.error.issues[0]?.message}`),
    !env.GRIDX_ADMIN_TOKEN
      ? fail("admin_token", "GRIDX_ADMIN_TOKEN is not set (wrangler secret put GRIDX_ADMIN_TOKEN)")
      : env.GRIDX_ADMIN_TOKEN.length < ADMIN_TOKEN_MIN_CHARS
        ? fail("admin_token", `GRIDX_ADMIN_TOKEN is shorter than ${ADMIN_TOKEN_MIN_CHARS} characters`)
        : pass("admin_token", "set"),
    await SecretVault.fromKey(env.SECRETS_KEY).then(
      () => pass("secrets_key", "32 bytes"),
      (err: Error) => fail("secrets_key", err.message),
    ),
    settings.success ? await s3Check(settings.data) : fail("s3", "not checked: the vars do not parse"),
    await env.BUCKET.head("gridx-health-probe").then(
      () => pass("r2_binding", "the BUCKET binding answers"),
      (err: Error) => fail("r2_binding", `the BUCKET binding failed: ${err.message}`),
    ),
    await migrationsCheck(env.DB),
  ];
  return checks;
}

async function s3Check(s: { S3_ENDPOINT: string; S3_BUCKET: string; S3_ACCESS_KEY_ID?: string; S3_SECRET_ACCESS_KEY?: string }): Promise<HealthCheck> {
  const missing = (["S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"] as const).filter((k) => !s[k]);
  if (missing.length) return fail("s3", `${missing.join(", ")} not set: presigned uploads and downloads cannot work`);
  const client = new AwsClient({ accessKeyId: s.S3_ACCESS_KEY_ID!, secretAccessKey: s.S3_SECRET_ACCESS_KEY!, service: "s3", region: "auto" });
  const url = `${s.S3_ENDPOINT.replace(/\/$/, "")}/${s.S3_BUCKET}`;
  try {
    const res = await client.fetch(url, { method: "HEAD", signal: AbortSignal.timeout(S3_CHECK_MS) });
    if (res.ok) return pass("s3", `bucket ${s.S3_BUCKET} answers at S3_ENDPOINT`);
    if (res.status === 401 || res.status === 403) return fail("s3", `S3_ENDPOINT refused the S3 keys (${res.status}): check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY`);
    if (res.status === 404) return fail("s3", `S3_ENDPOINT has no bucket ${s.S3_BUCKET} (S3_BUCKET)`);
    return fail("s3", `S3_ENDPOINT answered ${res.status} to a signed HEAD of bucket ${s.S3_BUCKET}`);
  } catch (err) {
    return fail("s3", `S3_ENDPOINT (${s.S3_ENDPOINT}) cannot be reached: ${(err as Error).message}`);
  }
}

async function migrationsCheck(db: D1Database): Promise<HealthCheck> {
  try {
    const last = await db.prepare("SELECT name FROM d1_migrations ORDER BY id DESC LIMIT 1").first<{ name: string }>();
    const applied = last?.name.replace(/\.sql$/, "") ?? null;
    if (applied === LATEST_MIGRATION) return pass("migrations", `at ${LATEST_MIGRATION}`);
    if (applied !== null && applied > LATEST_MIGRATION) return pass("migrations", `at ${applied}, newer than this build's ${LATEST_MIGRATION}`);
    return fail("migrations", `D1 is at ${applied ?? "no migration"}, this build needs ${LATEST_MIGRATION}: run wrangler d1 migrations apply DB --remote`);
  } catch (err) {
    return fail("migrations", `no migrations applied (${(err as Error).message}): run wrangler d1 migrations apply DB --remote`);
  }
}
