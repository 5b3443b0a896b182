import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { ArtifactUpload, CompletedPart } from "../../../protocol/index.ts";
import { walkFolder, type FolderFile } from "../folder-bytes.ts";
import { expectOk, readBody, send, withRetry, type HttpOptions } from "./http.ts";

/** Parts of one multipart upload sent at once. */
const PART_CONCURRENCY = 4;

export type OutputFile = FolderFile;

/**
 * The regular files under a folder (links are skipped), sorted by name, from at most
 * `maxEntries` entries looked at; `complete` is false when there were more.
 */
export async function listFiles(root: string, maxEntries: number): Promise<{ files: OutputFile[]; complete: boolean }> {
  const files: OutputFile[] = [];
  const { complete } = await walkFolder(root, maxEntries, (f) => void files.push(f));
  return { files: files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)), complete };
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** The agent's calls to the control plane's artifact routes (agent token). */
export interface ArtifactApi {
  prepare(files: { name: string; size: number }[]): Promise<(ArtifactUpload & { upload_id: string | null })[]>;
  complete(artifacts: { name: string; size: number; sha256: string; upload_id: string | null; parts?: CompletedPart[] }[]): Promise<void>;
}

/** How long an output upload keeps retrying through network trouble or a control-plane restart. */
export const UPLOAD_RETRY_MS = 5 * 60 * 1000;

export function artifactApi(base: string, token: string, jobId: string, attempt: number, http: HttpOptions): ArtifactApi {
  const call = (path: string, body: unknown) =>
    withRetry(async () => {
      const res = await expectOk(await send(new URL(path, base).toString(), "POST", JSON.stringify(body), { authorization: `Bearer ${token}`, "content-type": "application/json" }, http), path);
      return JSON.parse(await readBody(res)) as unknown;
    }, { deadlineMs: UPLOAD_RETRY_MS });
  return {
    prepare: async (files) => ((await call("/v1/agent/artifacts/prepare", { job_id: jobId, attempt, files })) as { uploads: (ArtifactUpload & { upload_id: string | null })[] }).uploads,
    complete: async (artifacts) => void (await call("/v1/agent/artifacts/complete", { job_id: jobId, attempt, artifacts })),
  };
}

async function inParallel<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!);
      }
    }),
  );
  return results;
}

/**
 * Uploads files through presigned URLs: one PUT each, or multipart with parts in parallel;
 * then records them with their SHA-256. Returns what was recorded.
 */
export async function uploadFiles(files: OutputFile[], api: ArtifactApi, http: HttpOptions) {
  if (files.length === 0) return [];
  const uploads = await api.prepare(files.map(({ name, size }) => ({ name, size })));
  const byName = new Map(uploads.map((u) => [u.name, u]));
  const done = [];
  for (const file of files) {
    const u = byName.get(file.name);
    if (!u) throw new Error(`no upload was prepared for ${file.name}`);
    const sha256 = await sha256File(file.path);
    const upload = u.upload;
    if ("method" in upload) {
      await withRetry(async () => (await expectOk(await send(upload.url, "PUT", { file: file.path, start: 0, end: file.size }, {}, http), `uploading ${file.name}`)).resume(), { deadlineMs: UPLOAD_RETRY_MS });
      done.push({ name: file.name, size: file.size, sha256, upload_id: null });
    } else {
      const { part_size, parts } = upload.multipart;
      const etags = await inParallel(parts, PART_CONCURRENCY, (p) =>
        withRetry(async () => {
          const start = (p.part_number - 1) * part_size;
          const res = await expectOk(await send(p.url, "PUT", { file: file.path, start, end: Math.min(start + part_size, file.size) }, {}, http), `uploading ${file.name} part ${p.part_number}`);
          res.resume();
          return { part_number: p.part_number, etag: String(res.headers.etag ?? "") };
        }, { deadlineMs: UPLOAD_RETRY_MS }),
      );
      done.push({ name: file.name, size: file.size, sha256, upload_id: u.upload_id, parts: etags });
    }
  }
  await api.complete(done);
  return done;
}
