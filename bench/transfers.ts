import type { BenchPlane } from "./grid.ts";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { AwsClient } from "aws4fetch";
import { datasetDownloadUrl, downloadDataset, uploadDataset } from "../cli/src/datasets.ts";
import { ApiClient } from "../cli/src/api.ts";
import { LOCAL_S3_SECRETS } from "../scripts/local-grid.ts";
import { median, round, type Figure } from "./stats.ts";

function curl(args: string[]): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const p = spawn("curl", ["-sS", "-f", ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (c: Buffer) => (err += c.toString()));
    p.on("close", (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`curl ${code}: ${err}`))));
  });
}

/** 4. Dataset upload and download through gridx's presigned URLs, against raw curl to the same endpoint. */
export async function benchTransfers(cp: BenchPlane, sizeMib: number, runs: number): Promise<Figure[]> {
  const dir = mkdtempSync(join(cp.dir, "transfers-"));
  const file = join(dir, "payload.bin");
  const fd = openSync(file, "w");
  for (let i = 0; i < sizeMib; i++) writeSync(fd, randomBytes(1 << 20));
  closeSync(fd);
  const api = new ApiClient(cp.url, cp.adminToken);
  const s3 = new AwsClient({ accessKeyId: LOCAL_S3_SECRETS.S3_ACCESS_KEY_ID, secretAccessKey: LOCAL_S3_SECRETS.S3_SECRET_ACCESS_KEY, service: "s3", region: "auto" });
  const raw = (method: "PUT") => s3.sign(new Request(`${cp.url}/cdn-cgi/local/r2/s3/gridx/bench/raw.bin?X-Amz-Expires=900`, { method }), { aws: { signQuery: true } });
  const quiet = () => undefined;
  const up: number[] = [];
  const down: number[] = [];
  const rawUp: number[] = [];
  const rawDown: number[] = [];
  for (let i = 0; i < runs; i++) {
    let t0 = performance.now();
    const d = await uploadDataset(api, file, `bench-${i}.bin`, quiet);
    up.push(performance.now() - t0);
    rawUp.push(await curl(["-T", file, (await raw("PUT")).url]));
    t0 = performance.now();
    await downloadDataset(api, d.id, join(dir, "copy.bin"));
    down.push(performance.now() - t0);
    // The same object through the same presigned GET, and both write the file to disk; gridx also hashes it.
    const location = await datasetDownloadUrl(api, d.id);
    rawDown.push(await curl(["-o", join(dir, "raw-copy.bin"), location]));
  }
  const mibps = (ms: number[]) => round(sizeMib / (median(ms) / 1000));
  return [
    { section: "4 transfers", name: `upload ${sizeMib} MiB via gridx (multipart, sha256)`, value: mibps(up), unit: "MiB/s" },
    { section: "4 transfers", name: `upload ${sizeMib} MiB raw curl PUT`, value: mibps(rawUp), unit: "MiB/s" },
    { section: "4 transfers", name: "upload gridx / raw", value: round(median(rawUp) / median(up), 2), unit: "×", target: ">= 0.8" },
    { section: "4 transfers", name: `download ${sizeMib} MiB via gridx (sha256 check)`, value: mibps(down), unit: "MiB/s" },
    { section: "4 transfers", name: `download ${sizeMib} MiB raw curl GET`, value: mibps(rawDown), unit: "MiB/s" },
    { section: "4 transfers", name: "download gridx / raw", value: round(median(rawDown) / median(down), 2), unit: "×", target: ">= 0.8" },
  ];
}
