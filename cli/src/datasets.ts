import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { basename } from "node:path";
import type { CompletedPart, PartUrl } from "../../protocol/index.ts";
import { downloadFile } from "../../agent/src/transfer/download.ts";
import { expectOk, send } from "../../agent/src/transfer/http.ts";
import { sha256File } from "../../agent/src/transfer/uploader.ts";
import { MANUAL_REDIRECT, type ApiClient } from "./api.ts";
import { CliError, UsageError } from "./errors.ts";
import { Progress } from "./progress.ts";

/** Parts of one upload sent at once. */
const PARALLEL_PARTS = 4;

/** What survives an interrupted upload, beside the file: enough to send only the missing parts. */
interface ResumeState {
  dataset_id: string;
  size: number;
  mtime_ms: number;
  sha256: string;
  part_size: number;
  part_count: number;
  done: Record<string, string>;
}

const notFound = "list datasets with `gridx datasets ls`";
type Dataset = Awaited<ReturnType<typeof getDataset>>;

export function getDataset(api: ApiClient, id: string) {
  return api.json(api.rpc.v1.datasets[":id"].$get({ param: { id } }), { notFound });
}

/** A presigned GET of a ready dataset's bytes. */
export function datasetDownloadUrl(api: ApiClient, id: string): Promise<string> {
  return api.location(api.rpc.v1.datasets[":id"].download.$get({ param: { id }, query: {} }, MANUAL_REDIRECT), { notFound });
}

const complete = (api: ApiClient, id: string, parts?: CompletedPart[]) =>
  api.json(api.rpc.v1.datasets[":id"].complete.$post({ param: { id }, json: parts ? { parts } : {} }), { notFound });

const stateFile = (file: string) => `${file}.gridx-upload`;

/** Written whole or not at all: a kill mid-write must not spoil the record of finished parts. */
function saveState(file: string, state: ResumeState): void {
  const tmp = `${stateFile(file)}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, stateFile(file));
}

function loadState(file: string): ResumeState | null {
  if (!existsSync(stateFile(file))) return null;
  try {
    const s = JSON.parse(readFileSync(stateFile(file), "utf8")) as ResumeState;
    const st = statSync(file);
    return s.size === st.size && s.mtime_ms === st.mtimeMs ? s : null;
  } catch {
    return null;
  }
}

/**
 * Uploads a file as a dataset: its SHA-256 first (the agents verify it), then one PUT or
 * parallel multipart parts, each part recorded as it lands so a rerun after an interruption
 * sends only what is missing. Returns the ready dataset.
 */
export async function uploadDataset(
  api: ApiClient,
  file: string,
  name = basename(file),
  log: (line: string) => void = (l) => process.stderr.write(l + "\n"),
  project?: string,
): Promise<Dataset> {
  const st = await stat(file).catch(() => null);
  if (!st?.isFile()) throw new UsageError(`${file} is not a file`);
  let state = loadState(file);
  let urls: PartUrl[] = [];
  if (state) {
    log(`resuming dataset ${state.dataset_id}: ${Object.keys(state.done).length} of ${state.part_count} parts already uploaded`);
  } else {
    log(`hashing ${file}…`);
    const sha256 = await sha256File(file);
    const created = await api.json(api.rpc.v1.datasets.$post({ json: { name, size: st.size, sha256, ...(project ? { project } : {}) } }), {
      fields: [
        ["name", "--name"],
        ["project", "--project"],
      ],
    });
    if ("method" in created.upload) {
      const progress = new Progress(`uploading ${name}`, st.size);
      await putWhole(created.upload.url, file, st.size, progress);
      progress.done();
      return complete(api, created.id);
    }
    const mp = created.upload.multipart;
    state = { dataset_id: created.id, size: st.size, mtime_ms: st.mtimeMs, sha256, part_size: mp.part_size, part_count: mp.part_count, done: {} };
    saveState(file, state);
    urls = mp.parts;
  }
  const s = state;
  const missing = Array.from({ length: s.part_count }, (_, i) => i + 1).filter((n) => !s.done[n]);
  // URLs expire and are handed out in batches: ask for those still needed.
  const have = new Set(urls.map((u) => u.part_number));
  for (let i = 0; i < missing.length; i += 1000) {
    const want = missing.slice(i, i + 1000).filter((n) => !have.has(n));
    if (want.length) urls.push(...(await api.json(api.rpc.v1.datasets[":id"]["upload-urls"].$post({ param: { id: s.dataset_id }, json: { part_numbers: want } }), { notFound })).parts);
  }
  const byNumber = new Map(urls.map((u) => [u.part_number, u.url]));
  const progress = new Progress(`uploading ${name}`, s.size);
  let sent = Object.keys(s.done).length * s.part_size;
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(PARALLEL_PARTS, missing.length) }, async () => {
      while (next < missing.length) {
        const n = missing[next++]!;
        const start = (n - 1) * s.part_size;
        const end = Math.min(start + s.part_size, s.size);
        const res = await expectOk(await send(byNumber.get(n)!, "PUT", { file, start, end }, {}, {}), `part ${n}`);
        res.resume();
        s.done[n] = String(res.headers.etag ?? "");
        saveState(file, s);
        sent += end - start;
        progress.update(Math.min(sent, s.size), `part ${Object.keys(s.done).length}/${s.part_count}`);
      }
    }),
  );
  progress.done();
  const parts: CompletedPart[] = Object.entries(s.done).map(([n, etag]) => ({ part_number: Number(n), etag }));
  const ready = await complete(api, s.dataset_id, parts);
  await rm(stateFile(file), { force: true });
  return ready;
}

async function putWhole(url: string, file: string, size: number, progress: Progress) {
  const res = await expectOk(await send(url, "PUT", { file, start: 0, end: size }, {}, {}), "upload");
  res.resume();
  progress.update(size);
}

/** Downloads a dataset, resuming a partial file, and checks its SHA-256. */
export async function downloadDataset(api: ApiClient, id: string, out?: string): Promise<{ path: string; sha256: string }> {
  const d = await getDataset(api, id);
  if (d.status !== "ready") throw new CliError(`dataset ${id} is still uploading: finish it by running the same \`gridx datasets upload FILE\` again (it resumes)`);
  const path = out ?? d.name.split("/").pop()!;
  const part = `${path}.part`;
  const location = await datasetDownloadUrl(api, id);
  const progress = new Progress(`downloading ${d.name}`, d.size);
  // A partial file from an earlier run is kept and only the rest is fetched.
  const { sha256: digest } = await downloadFile(location, part, { size: d.size, what: "download", resume: true, onProgress: (n) => progress.update(n) });
  progress.done();
  if (d.sha256 && digest !== d.sha256) {
    await rm(part, { force: true });
    throw new CliError(`the download's sha256 ${digest} does not match the dataset's ${d.sha256}; removed it, try again`);
  }
  await rename(part, path);
  return { path, sha256: digest };
}
