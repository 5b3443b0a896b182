import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Transfers } from "../../agent/src/runner/docker-runner.ts";
import { InputCache } from "../../agent/src/transfer/input-cache.ts";
import type { ArtifactApi } from "../../agent/src/transfer/uploader.ts";
import type { InputDownload } from "../../protocol/index.ts";

export interface LocalStore {
  /** Inputs from here into an InputCache at the given folder, outputs up to here. */
  transfers: Transfers;
  /** What was uploaded, by artifact name, once the agent completed it. */
  readonly completed: Map<string, Buffer>;
  /** Serves `body` as a dataset, to be linked at `path` under /work/input. */
  input(dataset: string, path: string, body: string): InputDownload;
  close(): Promise<void>;
}

/**
 * The control plane's storage, stood in for on 127.0.0.1: datasets to download and presigned
 * PUTs for outputs, whose bodies are kept once the agent completes them.
 */
export async function localStore(cacheDir: string): Promise<LocalStore> {
  const datasets = new Map<string, Buffer>();
  const put = new Map<string, Buffer>();
  const completed = new Map<string, Buffer>();
  const server = createServer((req, res) => {
    const [, kind, name = ""] = (req.url ?? "").split("/").map(decodeURIComponent);
    if (req.method === "GET" && kind === "datasets" && datasets.has(name)) return void res.end(datasets.get(name));
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method === "PUT" && kind === "uploads") put.set(name, Buffer.concat(chunks));
      else res.statusCode = 404;
      res.end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const api: ArtifactApi = {
    prepare: async (files) => files.map((f) => ({ name: f.name, upload: { method: "PUT" as const, url: `${base}/uploads/${encodeURIComponent(f.name)}`, expires_at: "" }, upload_id: null })),
    complete: async (artifacts) => {
      for (const a of artifacts) completed.set(a.name, put.get(a.name) ?? Buffer.alloc(0));
    },
  };
  return {
    transfers: { cache: new InputCache(cacheDir, 1 << 20, {}), artifacts: () => api, http: {}, logCapBytes: 1 << 20 },
    completed,
    input(dataset, path, body) {
      datasets.set(dataset, Buffer.from(body));
      return { dataset, path, url: `${base}/datasets/${encodeURIComponent(dataset)}`, size: Buffer.byteLength(body), sha256: null };
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}
