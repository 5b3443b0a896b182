import { rename, rm } from "node:fs/promises";
import { basename } from "node:path";
import { downloadFile, downloadStream, type DownloadOptions } from "../../agent/src/transfer/download.ts";
import { MANUAL_REDIRECT, pathParam, type ApiClient } from "./api.ts";
import { CliError } from "./errors.ts";
import { Progress } from "./progress.ts";

const notFound = "list jobs with `gridx list`";
/** Smaller downloads get no progress bar. */
const PROGRESS_FROM_BYTES = 1024 * 1024;

/** The latest attempt's artifacts of a job. */
export async function listArtifacts(api: ApiClient, id: string) {
  return (await api.json(api.rpc.v1.jobs[":id"].artifacts.$get({ param: { id } }), { notFound })).artifacts;
}

/**
 * Downloads one artifact through its presigned URL, with a progress bar on stderr, and checks
 * its SHA-256. `out` is a file (written whole or not at all), `-` for stdout, or by default
 * the artifact's base name.
 */
export async function downloadArtifact(api: ApiClient, id: string, name: string, out?: string): Promise<{ path: string; name: string; size: number; sha256: string }> {
  const artifacts = await listArtifacts(api, id);
  const artifact = artifacts.find((a) => a.name === name);
  if (!artifact) {
    const names = artifacts.map((a) => a.name);
    throw new CliError(`job ${id} has no artifact ${name}; ${names.length ? `it has: ${names.join(", ")}` : "it has none (yet)"}`);
  }
  const location = await api.location(api.rpc.v1.jobs[":id"].artifacts[":name{.+}"].$get({ param: { id, name: pathParam(name) }, query: {} }, MANUAL_REDIRECT), { notFound });
  const path = out ?? basename(name);
  const toStdout = path === "-";
  const part = `${path}.part`;
  const progress = artifact.size >= PROGRESS_FROM_BYTES ? new Progress(`downloading ${name}`, artifact.size) : undefined;
  const opts: DownloadOptions = { size: artifact.size, what: `download of ${name}`, onProgress: (n) => progress?.update(n) };
  // Stdout takes bytes in order only: one stream. A file gets parallel ranged parts.
  const { sha256: digest } = toStdout ? await downloadStream(location, process.stdout, opts) : await downloadFile(location, part, opts);
  progress?.done();
  if (digest !== artifact.sha256) {
    if (!toStdout) await rm(part, { force: true });
    throw new CliError(`the download of ${name} has sha256 ${digest}, the artifact ${artifact.sha256}; ${toStdout ? "do not trust what was written" : "removed it"}, try again`);
  }
  if (!toStdout) await rename(part, path);
  return { path, name, size: artifact.size, sha256: digest };
}
