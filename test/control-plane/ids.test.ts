import { describe, expect, it } from "vitest";
import { newId } from "../../control-plane/src/ids";

describe("newId", () => {
  it("is strictly increasing for ids made in the same millisecond", () => {
    const now = Date.UTC(2026, 11, 1);
    const ids = Array.from({ length: 2_000 }, () => newId("j", now));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it("keeps its order when the clock steps back, and sorts by time across milliseconds", () => {
    const now = Date.UTC(2026, 11, 1, 12);
    const a = newId("j", now);
    const b = newId("j", now - 5_000);
    const c = newId("j", now + 1);
    expect([a, b, c].sort()).toEqual([a, b, c]);
    expect(c.slice(2, 12)).not.toBe(a.slice(2, 12));
    expect(a).toMatch(/^j_[0-9a-hjkmnp-tv-z]{26}$/);
  });
});
