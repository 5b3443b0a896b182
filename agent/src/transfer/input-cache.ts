import { mkdir, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import type { InputDownload } from "../../../protocol/index.ts";
import { downloadFile } from "./download.ts";
import type { HttpOptions } from "./http.ts";

/**
 * A content-addressed store of downloaded inputs, bounded in size, least recently used first
 * out. An input is fetched once per machine: later jobs link the cached file.
 */
export class InputCache {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly dir: string,
    private readonly capBytes: number,
    private readonly http: HttpOptions,
  ) {}

  /** The cache key: the content's SHA-256 when known, else the dataset id. */
  static keyOf(input: InputDownload): string {
    return input.sha256 ?? `dataset-${input.dataset}`;
  }

  /** A local path holding the input's bytes, and whether it was already here. */
  async get(input: InputDownload): Promise<{ path: string; hit: boolean }> {
    const key = InputCache.keyOf(input);
    const path = join(this.dir, key);
    const cached = await stat(path).catch(() => null);
    if (cached && cached.size === input.size) {
      const now = new Date();
      await utimes(path, now, now);
      return { path, hit: true };
    }
    // Two jobs wanting the same input at once share one download.
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.download(input, path).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return { path: await pending, hit: false };
  }

  private async download(input: InputDownload, path: string): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    const tmp = `${path}.part-${process.pid}-${Date.now()}`;
    try {
      // The downloader holds the bytes to the recorded size; the content is checked here.
      const { sha256 } = await downloadFile(input.url, tmp, { size: input.size, what: `downloading dataset ${input.dataset}`, http: this.http });
      if (input.sha256 && sha256 !== input.sha256) throw new Error(`dataset ${input.dataset}: sha256 ${sha256} does not match ${input.sha256}`);
      await this.evict(input.size);
      await rename(tmp, path);
      return path;
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Makes room for `incoming` bytes by dropping the least recently used entries. */
  private async evict(incoming: number): Promise<void> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const entries = (
      await Promise.all(names.filter((n) => !n.includes(".part-")).map(async (n) => ({ path: join(this.dir, n), st: await stat(join(this.dir, n)).catch(() => null) })))
    ).filter((e) => e.st?.isFile()) as { path: string; st: import("node:fs").Stats }[];
    let total = entries.reduce((n, e) => n + e.st.size, 0) + incoming;
    for (const e of entries.sort((a, b) => a.st.mtimeMs - b.st.mtimeMs)) {
      if (total <= this.capBytes) break;
      // A job holding a hard link keeps its copy; the cache only forgets its own name.
      await rm(e.path, { force: true });
      total -= e.st.size;
    }
  }
}
