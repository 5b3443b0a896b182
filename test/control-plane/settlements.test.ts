import { describe, expect, it } from "vitest";
import { SETTLE_RETRY, SettlementQueue, settleRetryDelay } from "../../control-plane/src/coordinator/settlements.ts";

const policy = { baseMs: 1, maxMs: 4, isolateAfter: 2, giveUpAfter: 4 } as const;

/** A queue over a fake write that fails while `failing` says so, recording each batch. */
function queue(failing: (batch: string[]) => boolean) {
  const batches: string[][] = [];
  const retries: number[] = [];
  let serial = Promise.resolve();
  const q = new SettlementQueue<string, string>({
    apply: async (events) => {
      batches.push([...events]);
      if (failing(events)) throw new Error("D1 down");
      return events.map((e) => `ok:${e}`);
    },
    exclusive: (fn) => (serial = serial.then(fn)),
    batch: 3,
    policy,
    onRetry: (_err, _n, delayMs) => retries.push(delayMs),
  });
  return { q, batches, retries };
}

describe("settlement retries", () => {
  it("backs off exponentially up to the cap", () => {
    expect([1, 2, 3, 4, 10].map((f) => settleRetryDelay(f))).toEqual([100, 200, 400, 800, 5000]);
    expect(settleRetryDelay(60, SETTLE_RETRY)).toBe(SETTLE_RETRY.maxMs);
  });

  it("groups events that arrive together into one write", async () => {
    const { q, batches } = queue(() => false);
    expect(await Promise.all(["a", "b", "c", "d"].map((e) => q.push(e)))).toEqual(["ok:a", "ok:b", "ok:c", "ok:d"]);
    expect(batches).toEqual([["a", "b", "c"], ["d"]]);
  });

  it("retries a failed write until it commits, and only then settles each event", async () => {
    let failures = 2;
    const { q, batches, retries } = queue(() => failures-- > 0);
    expect(await Promise.all([q.push("a"), q.push("b")])).toEqual(["ok:a", "ok:b"]);
    expect(batches).toEqual([["a", "b"], ["a", "b"], ["a"], ["b"]]);
    expect(retries).toEqual([1, 2]);
  });

  it("writes an event that keeps failing alone, so the others are not held back, and gives it up in the end", async () => {
    const { q } = queue((batch) => batch.includes("poison"));
    const poison = q.push("poison");
    const good = q.push("good");
    await expect(poison).rejects.toThrow("D1 down");
    expect(await good).toBe("ok:good");
  });

  it("waits out the backoff even when another flush was queued while the write failed", async () => {
    const at: number[] = [];
    let serial = Promise.resolve();
    let fail = true;
    let pushLate: () => void = () => undefined;
    const q = new SettlementQueue<string, string>({
      apply: async (events) => {
        at.push(Date.now());
        if (fail) {
          fail = false;
          // An event arriving mid-write queues a flush behind this one.
          pushLate();
          throw new Error("D1 down");
        }
        return events.map((e) => `ok:${e}`);
      },
      exclusive: (fn) => (serial = serial.then(fn)),
      batch: 10,
      policy: { baseMs: 300, maxMs: 300, isolateAfter: 5, giveUpAfter: 5 },
      onRetry: () => undefined,
    });
    let late: Promise<string> | undefined;
    pushLate = () => (late = q.push("b"));
    const first = q.push("a");
    expect(await first).toBe("ok:a");
    expect(await late).toBe("ok:b");
    expect(at).toHaveLength(2);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(300);
  });
});
