import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { downloadFile, downloadStream, type DownloadOptions } from "../../agent/src/transfer/download.ts";

const PART = 64 * 1024;
const data = randomBytes(17 * PART + 123);
const sha = createHash("sha256").update(data).digest("hex");
const small = data.subarray(0, 1000);

/** What the server was asked: the path and the Range header, if any. */
let asked: { path: string; range: string | undefined }[] = [];
let failedOnce = new Set<string>();

/** Serves `body`, honouring `bytes=a-b` and `bytes=a-` ranges as R2 does. */
function serveRange(req: IncomingMessage, res: ServerResponse, body: Buffer, delayMs = 0) {
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
  if (!m) return void res.writeHead(200, { "content-length": body.length }).end(body);
  const start = Number(m[1]);
  const end = m[2] ? Math.min(Number(m[2]), body.length - 1) : body.length - 1;
  if (start >= body.length) return void res.writeHead(416, { "content-range": `bytes */${body.length}` }).end();
  setTimeout(() => res.writeHead(206, { "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${body.length}` }).end(body.subarray(start, end + 1)), delayMs);
}

const server = createServer((req, res) => {
  const path = req.url ?? "";
  asked.push({ path, range: req.headers.range });
  const range = req.headers.range ?? "";
  if (path === "/object") serveRange(req, res, data);
  // The first part answers last, so later parts land first and wait for it.
  else if (path === "/slow-head") serveRange(req, res, data, range.startsWith("bytes=0-") ? 150 : 0);
  else if (path === "/small") serveRange(req, res, small);
  else if (path === "/no-range") res.writeHead(200, { "content-length": data.length }).end(data);
  else if (path === "/flaky" && range.startsWith(`bytes=${3 * PART}-`) && !failedOnce.has(range)) {
    // Half the part, then the connection drops.
    failedOnce.add(range);
    res.writeHead(206, { "content-length": PART, "content-range": `bytes ${3 * PART}-${4 * PART - 1}/${data.length}` });
    res.write(data.subarray(3 * PART, 3 * PART + PART / 2), () => res.destroy());
  } else if (path === "/flaky") serveRange(req, res, data);
  else if (path === "/broken" && range.startsWith(`bytes=${5 * PART}-`)) res.writeHead(403).end("signature expired");
  else if (path === "/broken") serveRange(req, res, data);
  else res.writeHead(404).end();
});

let base = "";
beforeAll(async () => {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => void server.close());
beforeEach(() => {
  asked = [];
  failedOnce = new Set();
});

const tmpFile = () => join(mkdtempSync(join(tmpdir(), "gridx-download-")), "out.bin");

/** Options with small parts, recording every progress report. */
function options(over: Partial<DownloadOptions> = {}) {
  const seen: number[] = [];
  const opts: DownloadOptions = { size: data.length, what: "test download", partSize: PART, partsAtOnce: 4, onProgress: (n) => seen.push(n), ...over };
  return { opts, seen };
}

describe("downloadFile", () => {
  it("fetches parts with ranged GETs and hashes them in order though they land out of order", async () => {
    const file = tmpFile();
    const { opts, seen } = options();
    expect(await downloadFile(`${base}/slow-head`, file, opts)).toEqual({ bytes: data.length, sha256: sha });
    expect(readFileSync(file).equals(data)).toBe(true);
    expect(asked).toHaveLength(18);
    expect(asked.every((a) => a.range !== undefined)).toBe(true);
    expect(asked[0]?.range).toBe(`bytes=0-${PART - 1}`);
    expect(asked.at(-1)?.range).toBe(`bytes=${17 * PART}-${data.length - 1}`);
    expect(seen.at(-1)).toBe(data.length);
    expect(Math.max(...seen)).toBe(data.length);
  });

  it("uses one plain GET for an object smaller than a part", async () => {
    const file = tmpFile();
    const { opts } = options({ size: small.length });
    const got = await downloadFile(`${base}/small`, file, opts);
    expect(got.sha256).toBe(createHash("sha256").update(small).digest("hex"));
    expect(readFileSync(file).equals(small)).toBe(true);
    expect(asked).toEqual([{ path: "/small", range: undefined }]);
  });

  it("falls back to one whole GET when the server ignores Range", async () => {
    const file = tmpFile();
    const { opts } = options();
    expect(await downloadFile(`${base}/no-range`, file, opts)).toEqual({ bytes: data.length, sha256: sha });
    expect(readFileSync(file).equals(data)).toBe(true);
    expect(asked.at(-1)).toEqual({ path: "/no-range", range: undefined });
  });

  it("retries a part whose connection drops, counting its bytes once", async () => {
    const file = tmpFile();
    const { opts, seen } = options();
    expect(await downloadFile(`${base}/flaky`, file, opts)).toEqual({ bytes: data.length, sha256: sha });
    expect(readFileSync(file).equals(data)).toBe(true);
    expect(asked.filter((a) => a.range?.startsWith(`bytes=${3 * PART}-`))).toHaveLength(2);
    expect(Math.max(...seen)).toBe(data.length);
  });

  it("resumes a partial file: hashes the prefix it has and fetches only the rest", async () => {
    const file = tmpFile();
    const have = 3 * PART + 1000;
    writeFileSync(file, data.subarray(0, have));
    const { opts, seen } = options();
    expect(await downloadFile(`${base}/object`, file, { ...opts, resume: true })).toEqual({ bytes: data.length, sha256: sha });
    expect(readFileSync(file).equals(data)).toBe(true);
    expect(asked[0]?.range).toBe(`bytes=${have}-${have + PART - 1}`);
    expect(asked.map((a) => Number(/bytes=(\d+)/.exec(a.range ?? "")?.[1])).every((start) => start >= have)).toBe(true);
    expect(Math.min(...seen)).toBeGreaterThan(have);

    // A file already whole is only hashed.
    asked = [];
    expect((await downloadFile(`${base}/object`, file, { ...opts, resume: true })).sha256).toBe(sha);
    expect(asked).toEqual([]);
  });

  it("leaves a whole prefix behind when a part fails for good, so a rerun can resume", async () => {
    const file = tmpFile();
    const { opts } = options();
    await expect(downloadFile(`${base}/broken`, file, opts)).rejects.toThrow(/HTTP 403 signature expired/);
    const left = readFileSync(file);
    expect(left.length).toBe(5 * PART);
    expect(left.equals(data.subarray(0, left.length))).toBe(true);
  });

  it("refuses an object whose size is not the one recorded", async () => {
    await expect(downloadFile(`${base}/object`, tmpFile(), options({ size: data.length + 1 }).opts)).rejects.toThrow(`got ${data.length} bytes, expected ${data.length + 1}`);
    await expect(downloadFile(`${base}/small`, tmpFile(), options({ size: small.length - 1 }).opts)).rejects.toThrow(`got ${small.length} bytes, expected ${small.length - 1}`);
  });
});

describe("downloadStream", () => {
  it("streams the object in order into a sink it leaves open, hashed", async () => {
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk);
        done();
      },
    });
    expect(await downloadStream(`${base}/object`, sink, options().opts)).toEqual({ bytes: data.length, sha256: sha });
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(sink.writableEnded).toBe(false);
    expect(asked).toEqual([{ path: "/object", range: undefined }]);
  });
});
