import { createDb } from "../db/client.ts";
import { abandonedUploads, deleteDataset } from "../db/datasets.ts";
import type { Bindings } from "../env.ts";
import { settingsOf } from "../settings.ts";
import { ObjectStore } from "./object-store.ts";

/** Aborts uploads left unfinished past ABANDONED_UPLOAD_H and forgets their datasets. */
export async function abortAbandonedUploads(env: Bindings, now = Date.now()): Promise<number> {
  const settings = settingsOf(env);
  const db = createDb(env.DB);
  const stale = await abandonedUploads(db, now - settings.ABANDONED_UPLOAD_H * 3600 * 1000);
  if (stale.length === 0) return 0;
  const store = new ObjectStore(env.BUCKET, settings);
  for (const d of stale) {
    await store.abort(d.key, d.uploadId);
    await deleteDataset(db, d.id);
  }
  return stale.length;
}
