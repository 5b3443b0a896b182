import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

/** Bytes under a folder (files only; links are not followed). */
export async function folderBytes(path: string): Promise<number> {
  let total = 0;
  const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const full = join(path, e.name);
    if (e.isDirectory()) total += await folderBytes(full);
    else if (e.isFile()) total += (await lstat(full).catch(() => ({ size: 0 }))).size;
  }
  return total;
}
