import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../../control-plane/src/index.ts";
import { BACKUP_PREFIX, backupName, backupsToPrune, isBackupName } from "../../control-plane/src/backups/keep.ts";
import { dailyBackup } from "../../control-plane/src/backups/store.ts";
import { api, newProject, userToken } from "./helpers.ts";

async function clearBackups() {
  const listed = await env.BUCKET.list({ prefix: BACKUP_PREFIX });
  if (listed.objects.length > 0) await env.BUCKET.delete(listed.objects.map((o) => o.key));
}

const text = async (key: string) => (await env.BUCKET.get(key))!.text();

describe("backupsToPrune", () => {
  it("keeps the newest `keep` days and returns the rest, newest first", () => {
    const days = ["2026-11-20.sql", "2026-11-27.sql", "2026-11-21.sql", "2026-11-26.sql", "2026-11-22.sql", "2026-11-25.sql", "2026-11-23.sql", "2026-11-24.sql", "2026-11-19.sql"];
    expect(backupsToPrune(days, 7)).toEqual(["2026-11-20.sql", "2026-11-19.sql"]);
    expect(backupsToPrune(days, 9)).toEqual([]);
    expect(backupsToPrune(days.slice(0, 3), 7)).toEqual([]);
  });

  it("never prunes what is not a day's backup, and counts a day once", () => {
    expect(backupsToPrune(["notes.txt", "2026-11-20.sql.partial", "2026-13-40.sql", "2026-11-20.sql", "2026-11-20.sql", "2026-11-21.sql"], 1)).toEqual(["2026-11-20.sql"]);
    expect(isBackupName("2026-02-30.sql")).toBe(true);
    expect(isBackupName("2026-1-2.sql")).toBe(false);
  });

  it("names a backup by its UTC day", () => {
    expect(backupName(Date.parse("2026-12-02T23:59:59.999Z"))).toBe("2026-12-02.sql");
    expect(backupName(Date.parse("2026-12-03T00:00:00Z"))).toBe("2026-12-03.sql");
  });
});

describe("POST /v1/backups", () => {
  beforeEach(clearBackups);

  it("is the admin's alone", async () => {
    expect((await api("/v1/backups", { method: "POST", token: null })).status).toBe(401);
    const { token } = await userToken({ role: "owner" });
    for (const [method, path] of [["POST", "/v1/backups"], ["GET", "/v1/backups"], ["GET", "/v1/backups/2026-12-02.sql"]]) {
      const res = await api(path!, { method, token });
      expect([res.status, res.json.error.message]).toEqual([403, expect.stringContaining("admin")]);
    }
  });

  it("writes every table, d1_migrations included, and the rows as SQLite quotes them: a sealed secret as D1 holds it", async () => {
    const project = await newProject();
    const value = `plain-${crypto.randomUUID()}`;
    expect((await api(`/v1/projects/${project}/secrets/db-pass`, { method: "PUT", json: { value } })).status).toBe(200);
    const res = await api("/v1/backups", { method: "POST" });
    expect(res.status).toBe(201);
    const name = backupName(Date.now());
    expect(res.json).toMatchObject({ backup: { name, bytes: expect.any(Number) }, keep: 7, pruned: [] });

    const sql = await text(BACKUP_PREFIX + name);
    expect(res.json.backup.bytes).toBe(new TextEncoder().encode(sql).length);
    const { results: tables } = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'").all<{ name: string }>();
    expect(tables.map((t) => t.name)).toContain("d1_migrations");
    expect(res.json.tables).toBe(tables.length);
    const created = [...sql.matchAll(/^CREATE TABLE (?:IF NOT EXISTS )?[`"]?(\w+)[`"]?/gm)].map((m) => m[1]);
    expect(created.sort()).toEqual(tables.map((t) => t.name).sort());
    const { results: migrations } = await env.DB.prepare("SELECT name FROM d1_migrations").all<{ name: string }>();
    for (const m of migrations) expect(sql).toContain(`'${m.name}'`);

    const sealed = await env.DB.prepare("SELECT quote(sealed) AS q FROM secrets WHERE project = ?1").bind(project).first<{ q: string }>();
    expect(sql).toContain(sealed!.q);
    expect(sql).not.toContain(value);
    // Indexes and triggers come after the rows: a restore does not fire jobs' triggers, which would write job_events twice.
    const lastRow = sql.lastIndexOf('\nINSERT INTO "');
    expect(lastRow).toBeLessThan(sql.search(/^CREATE (UNIQUE )?INDEX/m));
    expect(lastRow).toBeLessThan(sql.search(/^CREATE TRIGGER `job_events_insert`/m));

    const listed = await api("/v1/backups");
    expect(listed.json.backups).toEqual([res.json.backup]);
    const got = await api(`/v1/backups/${name}`);
    expect([got.status, got.headers.get("content-type"), got.text]).toEqual([200, "application/sql", sql]);
  });

  it("answers a name that is not a backup's 400 naming the field, and one not there 404", async () => {
    const bad = await api("/v1/backups/latest.sql");
    expect([bad.status, bad.json.error.field]).toEqual([400, "name"]);
    const gone = await api("/v1/backups/1999-01-01.sql");
    expect([gone.status, gone.json.error.field]).toEqual([404, "name"]);
  });

  it("keeps the newest 7 days in R2: older ones are deleted, other objects left", async () => {
    for (let d = 1; d <= 9; d++) await env.BUCKET.put(`${BACKUP_PREFIX}2020-01-0${d}.sql`, `-- day ${d}\n`);
    await env.BUCKET.put(`${BACKUP_PREFIX}README.txt`, "an operator's note");
    const res = await api("/v1/backups", { method: "POST" });
    expect(res.json.pruned).toEqual(["2020-01-03.sql", "2020-01-02.sql", "2020-01-01.sql"]);
    const left = (await env.BUCKET.list({ prefix: BACKUP_PREFIX })).objects.map((o) => o.key.slice(BACKUP_PREFIX.length)).sort();
    expect(left).toEqual(["2020-01-04.sql", "2020-01-05.sql", "2020-01-06.sql", "2020-01-07.sql", "2020-01-08.sql", "2020-01-09.sql", backupName(Date.now()), "README.txt"].sort());
    expect((await api("/v1/backups")).json.backups.map((b: { name: string }) => b.name)).toEqual([backupName(Date.now()), "2020-01-09.sql", "2020-01-08.sql", "2020-01-07.sql", "2020-01-06.sql", "2020-01-05.sql", "2020-01-04.sql"]);
  });

  it("writes a dump bigger than a part in parts, byte for byte, and includes tables the migrations do not know", async () => {
    await env.DB.exec("CREATE TABLE bulk_rows (id INTEGER PRIMARY KEY, v TEXT)");
    try {
      const row = "x".repeat(500_000) + "'; -- quoted\nnext line";
      const insert = env.DB.prepare("INSERT INTO bulk_rows (v) VALUES (?1)");
      await env.DB.batch(Array.from({ length: 20 }, (_, i) => insert.bind(`${i}:${row}`)));
      const res = await api("/v1/backups", { method: "POST" });
      // Over BACKUP_PART_MB (8 MiB): a multipart upload of two parts or more.
      expect(res.json.backup.bytes).toBeGreaterThan(8 * 1024 * 1024);
      const sql = await text(BACKUP_PREFIX + res.json.backup.name);
      expect(new TextEncoder().encode(sql).length).toBe(res.json.backup.bytes);
      const quoted = `'${row.replace(/'/g, "''")}'`;
      for (let i = 0; i < 20; i++) expect(sql).toContain(`INSERT INTO "bulk_rows" ("id", "v") VALUES (${i + 1}, '${i}:${quoted.slice(1)});`);
    } finally {
      await env.DB.exec("DROP TABLE bulk_rows");
    }
  });
});

describe("the daily backup", () => {
  beforeEach(clearBackups);

  it("takes one a UTC day: later runs that day find it and skip", async () => {
    const morning = Date.parse("2031-05-06T00:10:00Z");
    const first = await dailyBackup(env, morning);
    expect(first?.backup.name).toBe("2031-05-06.sql");
    const kept = await env.BUCKET.head(`${BACKUP_PREFIX}2031-05-06.sql`);
    expect(await dailyBackup(env, morning + 23 * 3600 * 1000)).toBeNull();
    expect((await env.BUCKET.head(`${BACKUP_PREFIX}2031-05-06.sql`))!.etag).toBe(kept!.etag);
    expect((await dailyBackup(env, Date.parse("2031-05-07T00:00:00Z")))?.backup.name).toBe("2031-05-07.sql");
  });

  it("runs from the Cron Trigger", async () => {
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "*/30 * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect(await env.BUCKET.head(BACKUP_PREFIX + backupName(Date.now()))).not.toBeNull();
  });
});
