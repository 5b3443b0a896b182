import { describe, expect, it } from "vitest";
import { judgement, judgeSocket } from "../../control-plane/src/coordinator/liveness.ts";

const limits = { helloTimeoutMs: 10_000, workerTimeoutMs: 90_000 };

describe("judgeSocket", () => {
  it("gives a new socket until the hello timeout", () => {
    const s = { session: { tokenId: "t", workerId: null, connectedAt: 0 }, lastHeartbeat: null };
    expect(judgeSocket(s, 9_000, limits).kind).toBe("alive");
    expect(judgeSocket(s, 10_001, limits).kind).toBe("hello_timeout");
  });

  it("does not time out a socket whose hello came and waits to be recorded", () => {
    const s = { session: { tokenId: "t", workerId: null, connectedAt: 0, helloAt: 5_000 }, lastHeartbeat: null };
    expect(judgeSocket(s, 60_000, limits)).toEqual({ kind: "alive", lastSeen: 5_000 });
  });

  it("calls a worker silent 90 s after its last heartbeat", () => {
    const s = { session: { tokenId: "t", workerId: "w", connectedAt: 0 }, lastHeartbeat: 50_000 };
    expect(judgeSocket(s, 140_000, limits)).toEqual({ kind: "alive", lastSeen: 50_000 });
    expect(judgeSocket(s, 140_001, limits).kind).toBe("silent");
  });

  it("counts from the connection when no heartbeat came yet", () => {
    const s = { session: { tokenId: "t", workerId: "w", connectedAt: 1000 }, lastHeartbeat: null };
    expect(judgeSocket(s, 91_000, limits).kind).toBe("alive");
    expect(judgeSocket(s, 91_001, limits).kind).toBe("silent");
  });
});

describe("judgement", () => {
  const base = { sweepMs: 15_000, workerTimeoutMs: 90_000 };

  it("judges on a steady clock", () => {
    expect(judgement({ ...base, now: 100_000, lastSweepAt: 85_000, graceUntil: null })).toEqual({ judge: true, graceUntil: null });
    expect(judgement({ ...base, now: 100_000, lastSweepAt: null, graceUntil: null })).toEqual({ judge: true, graceUntil: null });
  });

  it("gives workers a full timeout after the coordinator's own outage", () => {
    const after = judgement({ ...base, now: 1_000_000, lastSweepAt: 500_000, graceUntil: null });
    expect(after).toEqual({ judge: false, graceUntil: 1_090_000 });
    expect(judgement({ ...base, now: 1_050_000, lastSweepAt: 1_035_000, graceUntil: 1_090_000 }).judge).toBe(false);
    expect(judgement({ ...base, now: 1_090_000, lastSweepAt: 1_075_000, graceUntil: 1_090_000 }).judge).toBe(true);
  });
});
