import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "../logger.ts";

/** An environment image as the collector weighs it. */
export interface CachedImage {
  /** What to remove it by. */
  ref: string;
  /** Its whole size, base layers included (see chooseEvictions). */
  bytes: number;
  /** Milliseconds since the epoch. */
  lastUse: number;
  /** Used by a container, being built, or handed to a job that has not ended. */
  inUse: boolean;
}

/**
 * The images to remove, least recently used first, until what stays fits `budgetBytes`. Images
 * in use stay and still count, so the rest may all go and the cache still be over. Each image
 * counts its whole size, though images share layers (their base at least): the disk they take
 * is at most what they count, so the budget errs on the side of the disk.
 *
 * @example
 * chooseEvictions([{ ref: "a", bytes: 6, lastUse: 1, inUse: false }, { ref: "b", bytes: 6, lastUse: 2, inUse: false }], 10); // ["a"]
 */
export function chooseEvictions(images: CachedImage[], budgetBytes: number): string[] {
  let total = images.reduce((sum, i) => sum + i.bytes, 0);
  const evict: string[] = [];
  const oldestFirst = images.filter((i) => !i.inUse).sort((a, b) => a.lastUse - b.lastUse || a.ref.localeCompare(b.ref));
  for (const image of oldestFirst) {
    if (total <= budgetBytes) break;
    evict.push(image.ref);
    total -= image.bytes;
  }
  return evict;
}

/**
 * When each environment image was last used, in a small JSON file (`{ "uses": { tag: ms } }`),
 * so a restarted agent evicts in the same order. A missing or unreadable file is an empty one:
 * the images' Created times stand in.
 */
export class LastUse {
  private uses: Promise<Map<string, number>> | null = null;
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  async get(ref: string): Promise<number | undefined> {
    return (await this.load()).get(ref);
  }

  async touch(ref: string, at = Date.now()): Promise<void> {
    (await this.load()).set(ref, at);
    await this.save();
  }

  /** Keeps only `refs` (the images that are still there). */
  async keepOnly(refs: Set<string>): Promise<void> {
    const uses = await this.load();
    const gone = [...uses.keys()].filter((r) => !refs.has(r));
    if (!gone.length) return;
    for (const r of gone) uses.delete(r);
    await this.save();
  }

  private load(): Promise<Map<string, number>> {
    this.uses ??= readFile(this.file, "utf8").then(
      (text) => {
        const uses = (JSON.parse(text) as { uses?: Record<string, unknown> }).uses ?? {};
        return new Map(Object.entries(uses).filter((e): e is [string, number] => typeof e[1] === "number"));
      },
      () => new Map(),
    ).catch((err: unknown) => {
      this.log.warn("the environment images' last-use file is unreadable; their build times stand in", { file: this.file, err });
      return new Map<string, number>();
    });
    return this.uses;
  }

  /** One write at a time, each whole (written aside, then renamed over), each with the latest map. */
  private save(): Promise<void> {
    this.saving = this.saving.then(async () => {
      const uses = await this.load();
      const tmp = `${this.file}.tmp`;
      try {
        await mkdir(dirname(this.file), { recursive: true });
        await writeFile(tmp, JSON.stringify({ uses: Object.fromEntries(uses) }));
        await rename(tmp, this.file);
      } catch (err) {
        this.log.warn("could not save the environment images' last use", { file: this.file, err });
      }
    });
    return this.saving;
  }
}
