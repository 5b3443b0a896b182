import { applyD1Migrations, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";

/*
 * The upgrade of a deployment that predates projects: its rows are written under the
 * migrations it had, then the projects migration runs, as `wrangler d1 migrations apply` does.
 */
describe("upgrading a deployment to projects", () => {
  it("puts every job, dataset and secret in project default, owned by a user per API token", async () => {
    const db = env.UPGRADE_DB;
    const projects = env.MIGRATIONS.findIndex((m) => m.name.startsWith("0005_"));
    expect(projects).toBeGreaterThan(0);
    await applyD1Migrations(db, env.MIGRATIONS.slice(0, projects));
    const now = Date.now();
    await db.batch([
      db.prepare("INSERT INTO tokens (id, kind, pool, name, hash, created_at) VALUES ('tok_alice', 'user', NULL, 'alice', 'h1', ?1), ('tok_ci', 'user', NULL, 'ci', 'h2', ?1), ('tok_ci2', 'user', NULL, 'ci', 'h3', ?1), ('tok_agent', 'agent', 'default', 'node', 'h4', ?1)").bind(now),
      db.prepare("INSERT INTO jobs (id, pool, kind, spec, status, priority, max_retries, created_by, created_at, queued_at) VALUES ('j_old', 'default', 'python', ?2, 'queued', 0, 2, 'tok_alice', ?1, ?1), ('j_admin', 'default', 'python', ?2, 'completed', 0, 2, 'admin', ?1, ?1)").bind(now, JSON.stringify({ pool: "default", env: {}, inputs: [] })),
      db.prepare("INSERT INTO datasets (id, name, size, status, key, created_by, created_at) VALUES ('ds_old', 'in', 1, 'ready', 'datasets/ds_old', 'tok_alice', ?1)").bind(now),
      db.prepare("INSERT INTO secrets (project, name, sealed, created_by, created_at, updated_at) VALUES ('default', 'k', 'v1.x.y', 'tok_alice', ?1, ?1), ('ml', 'k', 'v1.x.y', 'tok_alice', ?1, ?1)").bind(now),
    ]);
    await applyD1Migrations(db, env.MIGRATIONS);

    const rows = async (sql: string) => (await db.prepare(sql).all()).results;
    expect(await rows("SELECT id, project, submitted_by FROM jobs ORDER BY id")).toEqual([
      { id: "j_admin", project: "default", submitted_by: "admin" },
      { id: "j_old", project: "default", submitted_by: "alice" },
    ]);
    expect(await rows("SELECT project FROM datasets")).toEqual([{ project: "default" }]);
    // A project that only secrets named becomes a project, so its secrets stay reachable.
    expect(await rows("SELECT name FROM projects ORDER BY name")).toEqual([{ name: "default" }, { name: "ml" }]);
    expect(await rows("SELECT count(*) AS n FROM members WHERE project = 'ml'")).toEqual([{ n: 3 }]);
    // Stored specs carry what readers of a spec now expect.
    expect(JSON.parse(((await rows("SELECT spec FROM jobs WHERE id = 'j_old'"))[0] as { spec: string }).spec)).toEqual({ pool: "default", env: {}, inputs: [], project: "default", name: null, tags: [], secrets: {} });
    // Two tokens of one name become two users, told apart by their token id.
    expect(await rows("SELECT u.name, m.role FROM users u JOIN members m ON m.user_id = u.id AND m.project = 'default' ORDER BY u.name")).toEqual([
      { name: "alice", role: "owner" },
      { name: "ci-ok_ci2", role: "owner" },
      { name: "ci-tok_ci", role: "owner" },
    ]);
    expect(await rows("SELECT id, user_id FROM tokens ORDER BY id")).toEqual([
      { id: "tok_agent", user_id: null },
      { id: "tok_alice", user_id: "u_alice" },
      { id: "tok_ci", user_id: "u_ci" },
      { id: "tok_ci2", user_id: "u_ci2" },
    ]);
  });
});
