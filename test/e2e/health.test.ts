import { describe, expect, it } from "vitest";
import { api } from "./helpers.ts";

describe("GET /health?deep=1 on a grid set up as the README says", () => {
  it("passes every check: vars, admin token, secrets key, S3 keys accepted by R2's endpoint, the R2 binding, migrations", async () => {
    const res = await api("/health?deep=1");
    expect(res.status).toBe(200);
    expect(res.json.checks.filter((k: { ok: boolean }) => !k.ok)).toEqual([]);
    expect(res.json.ok).toBe(true);
    expect(res.json.checks.map((k: { name: string }) => k.name)).toEqual(["settings", "admin_token", "secrets_key", "s3", "r2_binding", "migrations"]);
  });
});
