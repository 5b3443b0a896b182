import { chmod, chown, mkdir } from "node:fs/promises";
import { join } from "node:path";

/** A job's folder on the host: what its container sees under /work, and its log. */
export interface JobFolder {
  dir: string;
  /** /work/input, mounted read-only. */
  input: string;
  /** /work/output, mounted read-write, the job user's. */
  output: string;
  /** /work/code, for the kinds that fill it (mounted read-only). */
  code: string;
}

/** Makes `dir` a job's folder, with input and output in place before any container mounts them. */
export async function createJobFolder(dir: string): Promise<JobFolder> {
  const folder = { dir, input: join(dir, "input"), output: join(dir, "output"), code: join(dir, "code") };
  await mkdir(folder.input, { recursive: true, mode: 0o755 });
  await mkdir(folder.output, { recursive: true, mode: 0o755 });
  await giveToJobUser(folder.output);
  return folder;
}

/** The job runs as uid 1000, so its output folder must be that user's to write. */
async function giveToJobUser(path: string) {
  if (process.getuid?.() === 0) await chown(path, 1000, 1000);
  else await chmod(path, 0o777);
}
