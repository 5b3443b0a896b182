import { describe, expect, it } from "vitest";
import { SlotGate } from "../../agent/src/slot-gate.ts";

const claim = (cpusMilli = 1000, memoryMb = 512) => ({ cpusMilli, memoryMb });
const caps = { cpu_cores: 2, memory_mb: 4096 };

/** Which of the given takes have been granted so far. */
async function granted(takes: Record<string, Promise<void>>): Promise<string[]> {
  const done: string[] = [];
  for (const [k, p] of Object.entries(takes)) void p.then(() => done.push(k));
  await new Promise((r) => setImmediate(r));
  return done.sort();
}

describe("SlotGate", () => {
  it("grants free slots at once and the next in line the moment one is released", async () => {
    const gate = new SlotGate(1, caps);
    const stop = new AbortController().signal;
    const takes = { a: gate.take("a", claim(), stop), b: gate.take("b", claim(), stop) };
    expect(await granted(takes)).toEqual(["a"]);
    expect(gate.counts).toEqual({ holding: 1, waiting: 1 });
    gate.release("a");
    gate.release("a");
    expect(await granted(takes)).toEqual(["a", "b"]);
    expect(gate.counts).toEqual({ holding: 1, waiting: 0 });
  });

  it("starts waiting jobs in the order they came, holding back a smaller one behind one that does not fit yet", async () => {
    const gate = new SlotGate(3, caps);
    const stop = new AbortController().signal;
    const takes = { a: gate.take("a", claim(), stop), big: gate.take("big", claim(2000), stop), small: gate.take("small", claim(), stop) };
    expect(await granted(takes)).toEqual(["a"]);
    gate.release("a");
    expect(await granted(takes)).toEqual(["a", "big"]);
    gate.release("big");
    expect(await granted(takes)).toEqual(["a", "big", "small"]);
  });

  it("lets a stopped job leave the line without a slot, and the one behind it move up", async () => {
    const gate = new SlotGate(1, caps);
    const stop = new AbortController().signal;
    const canceled = new AbortController();
    const takes = { a: gate.take("a", claim(), stop), b: gate.take("b", claim(), canceled.signal), c: gate.take("c", claim(), stop) };
    canceled.abort("user");
    expect(await granted(takes)).toEqual(["a", "b"]);
    expect(gate.counts).toEqual({ holding: 1, waiting: 1 });
    gate.release("a");
    expect(await granted(takes)).toEqual(["a", "b", "c"]);
  });
});
