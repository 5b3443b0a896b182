import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { settingsOf } from "../settings.ts";
import { dumpSql, type DumpStats } from "./dump.ts";
import { BACKUP_PREFIX, backupName, backupsToPrune, isBackupName } from "./keep.ts";

/** One backup object in R2. */
export interface BackupObject {
  name: string;
  bytes: number;
  uploaded: string;
}

export interface BackupReport extends DumpStats {
  backup: BackupObject;
  ms: number;
  keep: number;
  pruned: string[];
}

const view = (o: R2Object): BackupObject => ({ name: o.key.slice(BACKUP_PREFIX.length), bytes: o.size, uploaded: o.uploaded.toISOString() });

/**
 * Writes text to one R2 object in parts of exactly `partBytes` (R2 wants every part but the last
 * the same size), so memory holds one part however big the whole is. The object appears only
 * when complete: a dump that fails midway leaves nothing under its key.
 */
async function writeObject(bucket: R2Bucket, key: string, pieces: AsyncIterable<string>, partBytes: number): Promise<void> {
  const encoder = new TextEncoder();
  let buf = new Uint8Array(partBytes);
  let used = 0;
  let upload: R2MultipartUpload | null = null;
  const parts: R2UploadedPart[] = [];
  try {
    for await (const piece of pieces) {
      let bytes = encoder.encode(piece);
      while (bytes.length > 0) {
        const n = Math.min(bytes.length, partBytes - used);
        buf.set(bytes.subarray(0, n), used);
        used += n;
        bytes = bytes.subarray(n);
        if (used === partBytes) {
          upload ??= await bucket.createMultipartUpload(key, { httpMetadata: { contentType: "application/sql" } });
          parts.push(await upload.uploadPart(parts.length + 1, buf));
          buf = new Uint8Array(partBytes);
          used = 0;
        }
      }
    }
    if (!upload) {
      await bucket.put(key, buf.subarray(0, used), { httpMetadata: { contentType: "application/sql" } });
      return;
    }
    if (used > 0) parts.push(await upload.uploadPart(parts.length + 1, buf.subarray(0, used)));
    await upload.complete(parts);
  } catch (err) {
    await upload?.abort().catch((e: unknown) => console.error(`backups: aborting the upload of ${key} failed`, errorText(e)));
    throw err;
  }
}

/** Every daily backup in R2, newest first. */
export async function listBackups(bucket: R2Bucket): Promise<BackupObject[]> {
  const out: BackupObject[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: BACKUP_PREFIX, cursor });
    out.push(...page.objects.map(view).filter((b) => isBackupName(b.name)));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return out.sort((a, b) => b.name.localeCompare(a.name));
}

/** Deletes the backups past the newest BACKUP_KEEP_DAYS; returns their names. */
async function prune(bucket: R2Bucket, keep: number): Promise<string[]> {
  const gone = backupsToPrune((await listBackups(bucket)).map((b) => b.name), keep);
  if (gone.length > 0) await bucket.delete(gone.map((name) => BACKUP_PREFIX + name));
  return gone;
}

/** Dumps D1 to `backups/<UTC day>.sql` (replacing that day's), then prunes to BACKUP_KEEP_DAYS. */
export async function takeBackup(env: Bindings, now = Date.now()): Promise<BackupReport> {
  const settings = settingsOf(env);
  const key = BACKUP_PREFIX + backupName(now);
  const stats: DumpStats = { tables: 0, rows: 0 };
  const started = Date.now();
  await writeObject(env.BUCKET, key, dumpSql(env.DB, { pageRows: settings.BACKUP_PAGE_ROWS, at: now }, stats), settings.BACKUP_PART_MB * 1024 * 1024);
  const ms = Date.now() - started;
  const written = await env.BUCKET.head(key);
  if (!written) throw new Error(`backups: ${key} is not in R2 after writing it`);
  return { backup: view(written), ...stats, ms, keep: settings.BACKUP_KEEP_DAYS, pruned: await prune(env.BUCKET, settings.BACKUP_KEEP_DAYS) };
}

/**
 * The Cron Trigger's daily backup: runs every 30 minutes, so it takes one only when the UTC
 * day has none yet (one that failed is tried again half an hour later). Never throws.
 */
export async function dailyBackup(env: Bindings, now = Date.now()): Promise<BackupReport | null> {
  try {
    if (await env.BUCKET.head(BACKUP_PREFIX + backupName(now))) return null;
    const report = await takeBackup(env, now);
    console.log(`backups: ${report.backup.name}, ${report.tables} tables, ${report.rows} rows, ${report.backup.bytes} bytes in ${report.ms} ms; pruned ${report.pruned.length}`);
    return report;
  } catch (err) {
    console.error("backups: the daily backup failed", errorText(err));
    return null;
  }
}
