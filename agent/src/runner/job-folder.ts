import { chmod, chown, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { EngineInfo } from "../docker/types.ts";
import { JOB_USER } from "./sandbox.ts";

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

/** A uid and gid as the host sees them. */
export interface HostIds {
  uid: number;
  gid: number;
}

const [jobUid, jobGid] = JOB_USER.split(":").map(Number) as [number, number];

/**
 * The job user as the host sees it: JOB_USER itself, or, on an engine started with
 * `--userns-remap`, JOB_USER shifted by the uid and gid that container root maps to. The
 * engine names that root only in its data root's last part (`<data-root>/100000.100000`), so
 * it is read from there. Container ids map onto the subordinate ranges in order, so this holds
 * when the first range (/etc/subuid, /etc/subgid) is longer than JOB_USER's ids, as dockerd's
 * own 65536-id default is.
 *
 * @example
 * jobUserOnHost({ SecurityOptions: ["name=seccomp,profile=default", "name=userns"], DockerRootDir: "/var/lib/docker/100000.100000" });
 * // { uid: 101000, gid: 101000 }
 */
export function jobUserOnHost(info: Pick<EngineInfo, "SecurityOptions" | "DockerRootDir">): HostIds {
  const remapped = (info.SecurityOptions ?? []).some((o) => o.split(",").includes("name=userns"));
  if (!remapped) return { uid: jobUid, gid: jobGid };
  const root = /\/(\d+)\.(\d+)\/*$/.exec(info.DockerRootDir ?? "");
  if (!root) throw new Error(`the Docker engine remaps user namespaces (userns-remap), but its data root ${info.DockerRootDir ?? "(not given)"} does not end in <uid>.<gid> of the remapped root, so the job user's host ids are unknown`);
  return { uid: Number(root[1]) + jobUid, gid: Number(root[2]) + jobGid };
}

/** Where a job folder at `dir` keeps what it mounts. */
export function jobFolderAt(dir: string): JobFolder {
  return { dir, input: join(dir, "input"), output: join(dir, "output"), code: join(dir, "code") };
}

/** Makes `dir` a job's folder, with input and output in place before any container mounts them. */
export async function createJobFolder(dir: string, jobUser: HostIds = { uid: jobUid, gid: jobGid }): Promise<JobFolder> {
  const folder = jobFolderAt(dir);
  await mkdir(folder.input, { recursive: true, mode: 0o755 });
  await mkdir(folder.output, { recursive: true, mode: 0o755 });
  await giveToJobUser(folder.output, jobUser);
  return folder;
}

/**
 * Makes `path` (a job's output folder) the job user's to write: its own, with the host ids
 * the job user has (see `jobUserOnHost`). An agent that is not root cannot give it away, so
 * it opens it to all instead.
 */
export async function giveToJobUser(path: string, jobUser: HostIds): Promise<void> {
  if (process.getuid?.() === 0) await chown(path, jobUser.uid, jobUser.gid);
  else await chmod(path, 0o777);
}
