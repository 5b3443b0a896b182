import { describe, expect, it } from "vitest";
import { judgeSocket } from "../../control-plane/src/coordinator/liveness.ts";

const limits = { helloTimeoutMs: 10_000, workerTimeoutMs: 90_000 };

describe("judgeSocket", () => {
  it("gives a new socket until the hello timeout", () => {
    const s = { session: { tokenId: "t", workerId: null, connectedAt: 0 }, lastHeartbeat: null };
    expect(judgeSocket(s, 9_000, limits).kind).toBe("alive");
    expect(judgeSocket(s, 10_001, limits).kind).toBe("hello_timeout");
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
