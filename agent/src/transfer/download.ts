import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { expectOk, RetryableError, send, withRetry, type HttpOptions } from "./http.ts";

/**
 * Bytes per ranged GET. Large enough that a part's round trip is small beside its transfer and
 * it lands on disk in one write; small enough that the parts held for in-order hashing
 * (PART_SIZE × PARTS_AT_ONCE = 32 MiB) stay modest on an agent that also runs jobs.
 */
export const PART_SIZE = 8 * 1024 * 1024;
/**
 * Ranged GETs in flight at once. One connection to R2 (or wrangler's local S3 endpoint) does
 * not fill the link; a few do, and more mostly add memory and head-of-line waiting.
 */
export const PARTS_AT_ONCE = 4;
/** How long one part keeps retrying through network trouble or the store's 5xx. */
const PART_RETRY_MS = 30_000;

export interface DownloadOptions {
  /** The object's size, from its record: parts are cut from it and the result is held to it. */
  size: number;
  /** Names the download in error messages. */
  what: string;
  http?: HttpOptions;
  /** Bytes received so far, a resumed prefix included (for a progress meter). */
  onProgress?: (bytes: number) => void;
  /** Tuning, mostly for tests; the defaults are PART_SIZE and PARTS_AT_ONCE. */
  partSize?: number;
  partsAtOnce?: number;
}

export interface Downloaded {
  bytes: number;
  sha256: string;
}

/** A ranged GET answered with the whole object: this server must be read in one stream. */
class RangeIgnored extends Error {}

const wrongSize = (opts: DownloadOptions, got: number | string) => new Error(`${opts.what}: got ${got} bytes, expected ${opts.size}`);

/**
 * Downloads `url` into the file at `path` with parallel ranged GETs, each part written with one
 * positional write, and returns the object's size and SHA-256. With `resume`, bytes already in
 * the file are kept as a prefix (hashed, not fetched again). Parts are written in order, so an
 * interrupted download always leaves a whole prefix to resume from. A server that ignores
 * Range is read with one streaming GET instead.
 *
 * @example
 * const { sha256 } = await downloadFile(url, "train.bin.part", { size, what: "download", resume: true });
 */
export async function downloadFile(url: string, path: string, opts: DownloadOptions & { resume?: boolean }): Promise<Downloaded> {
  const have = opts.resume ? ((await stat(path).catch(() => null))?.size ?? 0) : 0;
  // A file longer than the object is not a prefix of it: start over.
  const offset = have <= opts.size ? have : 0;
  const hash = createHash("sha256");
  if (offset > 0) for await (const chunk of createReadStream(path, { end: offset - 1, highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  const file = await open(path, offset > 0 ? "r+" : "w");
  let rangesServed: boolean;
  try {
    rangesServed = await fetchParts(url, file, hash, offset, opts);
  } finally {
    await file.close();
  }
  if (!rangesServed) return streamInto(url, createWriteStream(path), true, opts);
  return { bytes: opts.size, sha256: hash.digest("hex") };
}

/**
 * Streams `url` in order into `sink` (left open: it may be stdout) with one GET, and returns its
 * size and SHA-256. Nothing can be retried once bytes are out, so this is for sinks that cannot
 * seek; files go through downloadFile.
 */
export function downloadStream(url: string, sink: Writable, opts: DownloadOptions): Promise<Downloaded> {
  return streamInto(url, sink, false, opts);
}

async function streamInto(url: string, sink: Writable, end: boolean, opts: DownloadOptions): Promise<Downloaded> {
  const res = await expectOk(await send(url, "GET", null, {}, opts.http ?? {}), opts.what);
  const hash = createHash("sha256");
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      hash.update(chunk);
      opts.onProgress?.(bytes);
      done(null, chunk);
    },
  });
  await pipeline(res, meter, sink, { end });
  if (bytes !== opts.size) throw wrongSize(opts, bytes);
  return { bytes, sha256: hash.digest("hex") };
}

interface Part {
  start: number;
  end: number;
}

/**
 * Fetches [offset, size) into `file` a window of parts at a time and hashes them in order.
 * Returns false when the server ignored Range: the file must then be written again from its start.
 */
async function fetchParts(url: string, file: FileHandle, hash: Hash, offset: number, opts: DownloadOptions): Promise<boolean> {
  const partSize = opts.partSize ?? PART_SIZE;
  const parts: Part[] = [];
  for (let start = offset; start < opts.size; start += partSize) parts.push({ start, end: Math.min(start + partSize, opts.size) });
  // An empty object is still fetched, so a bad URL fails as it would for any other.
  if (opts.size === 0) parts.push({ start: 0, end: 0 });
  // A small object whole is one plain GET; anything else asks for byte ranges.
  const ranged = offset > 0 || parts.length > 1;
  const abort = new AbortController();
  const http: HttpOptions = { ...opts.http, signal: abort.signal };
  let received = offset;
  const progress = (n: number) => {
    received += n;
    opts.onProgress?.(received);
  };
  // Parts in flight or landed, in object order: the head is written and hashed first, so memory
  // stays at most partsAtOnce parts however the later ones race ahead.
  const window: Promise<Buffer>[] = [];
  const spare: Buffer[] = [];
  let next = 0;
  try {
    for (const part of parts) {
      while (next < parts.length && window.length < (opts.partsAtOnce ?? PARTS_AT_ONCE)) {
        const p = parts[next++]!;
        // Only the last part is shorter, so a spare buffer is always big enough.
        const pending = fetchPart(url, p, spare.pop() ?? Buffer.allocUnsafe(p.end - p.start), ranged, http, opts, progress);
        // Failures are seen when the part reaches the head; until then they must not go unhandled.
        pending.catch(() => undefined);
        window.push(pending);
      }
      const data = await window.shift()!;
      const written = file.write(data, 0, data.length, part.start);
      hash.update(data);
      await written;
      spare.push(data);
    }
    return true;
  } catch (err) {
    abort.abort(err);
    await Promise.allSettled(window);
    if (err instanceof RangeIgnored) return false;
    throw err;
  }
}

/** One part into `buf`, retried from its start while the failure is the network's or the store's. */
function fetchPart(url: string, part: Part, buf: Buffer, ranged: boolean, http: HttpOptions, opts: DownloadOptions, progress: (n: number) => void): Promise<Buffer> {
  const len = part.end - part.start;
  return withRetry(async () => {
    const res = await expectOk(await send(url, "GET", null, ranged ? { range: `bytes=${part.start}-${part.end - 1}` } : {}, http), opts.what);
    let got = 0;
    try {
      if (ranged && res.statusCode !== 206) throw new RangeIgnored();
      checkLength(res, part, ranged, opts);
      for await (const chunk of res as AsyncIterable<Buffer>) {
        if (got + chunk.length > len) throw ranged ? new Error(`${opts.what}: more bytes than the ${len} of range ${part.start}-${part.end - 1}`) : wrongSize(opts, `more than ${len}`);
        chunk.copy(buf, got);
        got += chunk.length;
        progress(chunk.length);
      }
      if (got < len) throw ranged ? new RetryableError(`${opts.what}: range ${part.start}-${part.end - 1} ended after ${got} of ${len} bytes`) : wrongSize(opts, got);
    } catch (err) {
      // A retry starts the part again: the meter must not count these bytes twice.
      progress(-got);
      res.destroy();
      throw err;
    }
    return buf.subarray(0, len);
  }, { deadlineMs: PART_RETRY_MS, signal: http.signal });
}

/** Refuses a response whose headers already say it is not the bytes asked for. */
function checkLength(res: IncomingMessage, part: Part, ranged: boolean, opts: DownloadOptions): void {
  const length = res.headers["content-length"];
  if (!ranged) {
    if (length !== undefined && Number(length) !== opts.size) throw wrongSize(opts, length);
    return;
  }
  const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers["content-range"] ?? "");
  if (range?.[3] !== undefined && range[3] !== "*" && Number(range[3]) !== opts.size) throw wrongSize(opts, range[3]);
  if (!range || Number(range[1]) !== part.start || Number(range[2]) !== part.end - 1 || (length !== undefined && Number(length) !== part.end - part.start)) {
    throw new Error(`${opts.what}: asked for bytes ${part.start}-${part.end - 1}, got content-range ${res.headers["content-range"] ?? "(none)"}, content-length ${length ?? "(none)"}`);
  }
}
