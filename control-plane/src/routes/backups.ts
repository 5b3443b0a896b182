import { createRoute, z } from "@hono/zod-openapi";
import { audit } from "../audit.ts";
import { isBackupName, BACKUP_PREFIX } from "../backups/keep.ts";
import { listBackups, takeBackup } from "../backups/store.ts";
import { AppError } from "../errors.ts";
import { access, errors, json, router } from "../openapi.ts";

const tags = ["ops"];
const admin = access("admin");

const Backup = z
  .object({
    name: z.string().openapi({ example: "2026-12-02.sql" }),
    bytes: z.number().int(),
    uploaded: z.string().openapi({ description: "when R2 stored it (ISO 8601)" }),
  })
  .openapi("Backup");

const BackupReport = z
  .object({
    backup: Backup,
    tables: z.number().int(),
    rows: z.number().int(),
    ms: z.number().int().openapi({ description: "how long the dump took" }),
    keep: z.number().int().openapi({ description: "BACKUP_KEEP_DAYS: how many daily backups are kept" }),
    pruned: z.array(z.string()).openapi({ description: "older backups deleted to keep that many" }),
  })
  .openapi("BackupReport");

const BackupParams = z.object({
  name: z
    .string()
    .refine(isBackupName, "a backup's name, YYYY-MM-DD.sql")
    .openapi({ param: { name: "name", in: "path" }, example: "2026-12-02.sql" }),
});

/** D1 backups in R2 (docs/backups.md): taken here by `npm run backup`, and daily by the Cron Trigger. */
export const backupRoutes = router()
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "post",
      path: "/",
      summary: "Back up D1 now, to R2 backups/YYYY-MM-DD.sql (admin)",
      description: `${admin.description} Every table (d1_migrations included) as SQL that \`npm run restore\` replays; today's (UTC) backup is replaced, and backups past the newest BACKUP_KEEP_DAYS are deleted. Secrets stay sealed as D1 holds them.`,
      responses: { 201: json(BackupReport, "The backup taken, and what was pruned."), ...errors(401, 403) },
    }),
    async (c) => {
      const report = await takeBackup(c.env);
      await audit(c, "backup.create", { target: report.backup.name, detail: { bytes: report.backup.bytes, rows: report.rows, pruned: report.pruned } });
      return c.json(report, 201);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "get",
      path: "/",
      summary: "List the backups in R2, newest first (admin)",
      responses: { 200: json(z.object({ backups: z.array(Backup) }), "The daily backups kept."), ...errors(401, 403) },
    }),
    async (c) => c.json({ backups: await listBackups(c.env.BUCKET) }, 200),
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "get",
      path: "/{name}",
      summary: "Download one backup's SQL (admin)",
      request: { params: BackupParams },
      responses: {
        200: { description: "The backup, streamed from R2.", content: { "application/sql": { schema: z.string() } } },
        ...errors(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      const object = await c.env.BUCKET.get(BACKUP_PREFIX + name);
      if (!object) throw new AppError("not_found", `name: no backup ${name}`, "name");
      return c.body(object.body, 200, { "content-type": "application/sql", "content-length": String(object.size) });
    },
  );
