import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../control-plane/src/index.ts";
import { ADMIN, api, userToken } from "./helpers.ts";

/** GET /health?deep=1 against this plane with some settings broken. */
async function deep(overrides: Record<string, unknown>, token = ADMIN) {
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request("http://gridx.test/health?deep=1", { headers: { authorization: `Bearer ${token}` } }) as Parameters<typeof worker.fetch>[0], { ...env, ...overrides } as typeof env, ctx);
  await waitOnExecutionContext(ctx);
  const body = (await res.json()) as { ok: boolean; checks: { name: string; ok: boolean; message: string }[] };
  return { status: res.status, body, failed: Object.fromEntries(body.checks.filter((k) => !k.ok).map((k) => [k.name, k.message])) };
}

describe("GET /health?deep=1", () => {
  it("is the admin's; plain /health stays open to all", async () => {
    expect((await api("/health", { token: null })).json).toEqual({ ok: true, protocol_version: 1 });
    expect((await api("/health?deep=1", { token: null })).status).toBe(401);
    expect((await api("/health?deep=1", { token: (await userToken()).token })).status).toBe(403);
  });

  it("passes what is set right here and names the one setting that is not: this plane's S3 endpoint answers nowhere", async () => {
    const got = await deep({});
    expect([got.status, got.body.ok]).toEqual([200, false]);
    expect(got.body.checks.map((k) => k.name)).toEqual(["settings", "admin_token", "secrets_key", "s3", "r2_binding", "migrations"]);
    expect(Object.keys(got.failed)).toEqual(["s3"]);
    expect(got.failed.s3).toContain("S3_ENDPOINT (http://127.0.0.1:9/cdn-cgi/local/r2/s3) cannot be reached");
  });

  it("names each broken setting in turn", async () => {
    expect((await deep({ SECRETS_KEY: "" })).failed.secrets_key).toContain("set the Worker secret SECRETS_KEY to 32 random bytes");
    expect((await deep({ SECRETS_KEY: btoa("sixteen bytes!!!") })).failed.secrets_key).toContain("SECRETS_KEY");
    expect((await deep({ S3_ACCESS_KEY_ID: "", S3_SECRET_ACCESS_KEY: "" })).failed.s3).toBe("S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY not set: presigned uploads and downloads cannot work");
    const short = await deep({ GRIDX_ADMIN_TOKEN: "short-admin" }, "short-admin");
    expect(short.failed.admin_token).toBe("GRIDX_ADMIN_TOKEN is shorter than 16 characters");
    // A database no migration ran on: the deployment is behind its code.
    expect((await deep({ DB: env.UPGRADE_DB })).failed.migrations).toMatch(/no migrations applied|this build needs 0010_sessions_ports/);
  });
});
