import { lstat, opendir } from "node:fs/promises";
import { join, relative, sep } from "node:path";

/** A regular file found under a folder, named by its path relative to it with "/" between parts. */
export interface FolderFile {
  name: string;
  path: string;
  size: number;
}

export interface Walked {
  /** Entries looked at (files, folders, links and the rest). */
  visited: number;
  /** False when the walk stopped early: at `maxEntries`, or because `onFile` said so. */
  complete: boolean;
}

/**
 * Calls `onFile` for each regular file under `root` (links are not followed) until it returns
 * false or `maxEntries` entries have been looked at. Folders are read a batch at a time
 * (opendir), so a folder of a million entries costs only the entries read before the walk
 * stops, never a list of them all. The order is the file system's.
 */
export async function walkFolder(root: string, maxEntries: number, onFile: (file: FolderFile) => boolean | void): Promise<Walked> {
  const folders = [root];
  let visited = 0;
  for (let folder = folders.pop(); folder !== undefined; folder = folders.pop()) {
    const dir = await opendir(folder).catch(() => null);
    if (!dir) continue;
    // Leaving the loop early closes the folder.
    for await (const e of dir) {
      if (visited >= maxEntries) return { visited, complete: false };
      visited++;
      const path = join(folder, e.name);
      if (e.isDirectory()) folders.push(path);
      else if (e.isFile()) {
        const size = (await lstat(path).catch(() => ({ size: 0 }))).size;
        if (onFile({ name: relative(root, path).split(sep).join("/"), path, size }) === false) return { visited, complete: false };
      }
    }
  }
  return { visited, complete: true };
}

/** Bytes under a folder (files only; links are not followed). */
export async function folderBytes(path: string): Promise<number> {
  let total = 0;
  await walkFolder(path, Infinity, (f) => void (total += f.size));
  return total;
}
