import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { chooseEvictions, LastUse, type CachedImage } from "../../agent/src/repos/image-gc.ts";
import { silentLogger } from "../../agent/src/logger.ts";

const img = (ref: string, bytes: number, lastUse: number, inUse = false): CachedImage => ({ ref, bytes, lastUse, inUse });

describe("chooseEvictions", () => {
  it("evicts nothing while the images fit the budget", () => {
    expect(chooseEvictions([img("a", 5, 1), img("b", 5, 2)], 10)).toEqual([]);
    expect(chooseEvictions([], 0)).toEqual([]);
  });

  it("evicts the least recently used first, and only as many as it takes", () => {
    const images = [img("new", 4, 30), img("old", 4, 10), img("mid", 4, 20)];
    expect(chooseEvictions(images, 8)).toEqual(["old"]);
    expect(chooseEvictions(images, 4)).toEqual(["old", "mid"]);
    expect(chooseEvictions(images, 0)).toEqual(["old", "mid", "new"]);
  });

  it("never evicts an image in use, which still counts against the budget", () => {
    // "old" is in use: the two others go, and the cache stays over (12 > 3) with what cannot go.
    expect(chooseEvictions([img("old", 12, 1, true), img("mid", 4, 2), img("new", 4, 3)], 3)).toEqual(["mid", "new"]);
    expect(chooseEvictions([img("old", 4, 1, true), img("mid", 4, 2), img("new", 4, 3)], 8)).toEqual(["mid"]);
  });

  it("breaks a tie in last use by name, so the choice does not depend on listing order", () => {
    expect(chooseEvictions([img("b", 4, 1), img("a", 4, 1)], 4)).toEqual(["a"]);
    expect(chooseEvictions([img("a", 4, 1), img("b", 4, 1)], 4)).toEqual(["a"]);
  });
});

describe("LastUse (a JSON file in the state dir)", () => {
  it("keeps last uses across instances (an agent restart) and forgets images that are gone", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "gridx-uses-")), "state", "env-images.json");
    const first = new LastUse(file, silentLogger);
    expect(await first.get("gridx-env:a")).toBeUndefined();
    await first.touch("gridx-env:a", 1000);
    await first.touch("gridx-env:b", 2000);
    const restarted = new LastUse(file, silentLogger);
    expect([await restarted.get("gridx-env:a"), await restarted.get("gridx-env:b")]).toEqual([1000, 2000]);
    await restarted.keepOnly(new Set(["gridx-env:b"]));
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ uses: { "gridx-env:b": 2000 } });
  });

  it("reads a corrupt file as empty, and writes a whole one again", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "gridx-uses-")), "env-images.json");
    writeFileSync(file, "{not json");
    const uses = new LastUse(file, silentLogger);
    expect(await uses.get("x")).toBeUndefined();
    await Promise.all([uses.touch("x", 1), uses.touch("y", 2)]);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ uses: { x: 1, y: 2 } });
  });
});
