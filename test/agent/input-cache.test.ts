import { createHash } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputCache } from "../../agent/src/transfer/input-cache.ts";

const blobs: Record<string, string> = { "/a": "aaaaaa", "/b": "bbbbbb", "/c": "cccccc" };
const sha = (s: string) => createHash("sha256").update(s).digest("hex");
let base = "";
let hits: string[] = [];
const server = createServer((req, res) => {
  hits.push(req.url ?? "");
  const body = blobs[req.url ?? ""];
  if (body === undefined) res.writeHead(404).end();
  else res.end(body);
});

beforeAll(async () => {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => void server.close());

const input = (name: "a" | "b" | "c", over: Partial<{ sha256: string | null; size: number }> = {}) => ({
  dataset: `ds_${name}`,
  path: name,
  url: `${base}/${name}`,
  size: 6,
  sha256: sha(blobs[`/${name}`]!),
  ...over,
});

describe("InputCache", () => {
  it("downloads once, then serves from the cache", async () => {
    hits = [];
    const cache = new InputCache(mkdtempSync(join(tmpdir(), "gridx-cache-")), 100, {});
    const first = await cache.get(input("a"));
    const second = await cache.get(input("a"));
    expect([first.hit, second.hit]).toEqual([false, true]);
    expect(readFileSync(second.path, "utf8")).toBe("aaaaaa");
    expect(hits).toEqual(["/a"]);
  });

  it("shares one download between two jobs asking at once", async () => {
    hits = [];
    const cache = new InputCache(mkdtempSync(join(tmpdir(), "gridx-cache-")), 100, {});
    await Promise.all([cache.get(input("b")), cache.get(input("b"))]);
    expect(hits).toEqual(["/b"]);
  });

  it("evicts the least recently used entry past its cap", async () => {
    const cache = new InputCache(mkdtempSync(join(tmpdir(), "gridx-cache-")), 12, {});
    const a = await cache.get(input("a"));
    await new Promise((r) => setTimeout(r, 20));
    const b = await cache.get(input("b"));
    await new Promise((r) => setTimeout(r, 20));
    await cache.get(input("a")); // a is now the most recently used
    await new Promise((r) => setTimeout(r, 20));
    await cache.get(input("c"));
    expect(existsSync(a.path)).toBe(true);
    expect(existsSync(b.path)).toBe(false);
  });

  it("refuses bytes whose sha256 or size do not match, and keeps nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gridx-cache-"));
    const cache = new InputCache(dir, 100, {});
    await expect(cache.get(input("a", { sha256: sha("something else") }))).rejects.toThrow(/does not match/);
    await expect(cache.get(input("a", { sha256: null, size: 7 }))).rejects.toThrow(/got 6 bytes, expected 7/);
    await expect(cache.get({ ...input("a"), url: `${base}/missing` })).rejects.toThrow(/404/);
    expect((await import("node:fs")).readdirSync(dir)).toEqual([]);
  });
});
