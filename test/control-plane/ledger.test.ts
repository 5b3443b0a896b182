import { describe, expect, it } from "vitest";
import type { AttemptWithJob } from "../../control-plane/src/db/attempts.ts";
import type { WorkerRow } from "../../control-plane/src/db/workers.ts";
import { PoolLedger } from "../../control-plane/src/coordinator/ledger.ts";
import { caps } from "./helpers.ts";

const worker = (id: string, over: Partial<WorkerRow> = {}): WorkerRow => ({
  id,
  pool: "p",
  name: id,
  online: true,
  drain: null,
  caps: caps({ gpus: [{ index: 0, model: "T4", memory_mb: 15000 }, { index: 1, model: "T4", memory_mb: 15000 }] }),
  slots: 4,
  agentVersion: "test",
  warm: { envs: [], repos: [] },
  tokenId: "t",
  connectedAt: 0,
  lastSeen: 0,
  createdAt: 0,
  ...over,
});

const attempt = (jobId: string, workerId: string, over: Partial<AttemptWithJob> = {}): AttemptWithJob => ({
  jobId,
  attempt: 1,
  workerId,
  status: "assigned",
  cpusMilli: 1000,
  memoryMb: 512,
  gpuIndices: [],
  usage: null,
  retry: null,
  queuedAt: 0,
  assignedAt: 1,
  startedAt: null,
  finishedAt: null,
  deadlineAt: null,
  exitCode: null,
  failureReason: null,
  jobStatus: "assigned",
  jobAttempt: 1,
  maxRetries: 0,
  timeoutS: 60,
  project: "default",
  ...over,
});

describe("pool ledger", () => {
  it("sums what each connected worker's held attempts use", () => {
    const ledger = new PoolLedger();
    ledger.join(worker("w1"), [attempt("j1", "w1"), attempt("j2", "w1", { status: "running", gpuIndices: [1], memoryMb: 100 })]);
    ledger.join(worker("w2", { drain: "operator" }), []);
    expect(ledger.views()).toEqual([
      expect.objectContaining({ id: "w1", draining: false, used: { slots: 2, cpusMilli: 2000, memoryMb: 612, gpuIndices: [1] } }),
      expect.objectContaining({ id: "w2", draining: true, used: { slots: 0, cpusMilli: 0, memoryMb: 0, gpuIndices: [] } }),
    ]);
  });

  it("keeps an attempt while it holds a slot (canceling included) and forgets it once it ends", () => {
    const ledger = new PoolLedger();
    ledger.join(worker("w1"), []);
    const a = attempt("j1", "w1");
    ledger.record(a);
    expect(ledger.attempt("j1", 1)).toBe(a);
    ledger.record({ ...a, status: "canceling" });
    expect(ledger.views()[0]!.used.slots).toBe(1);
    ledger.record({ ...a, status: "finished" });
    expect(ledger.attempt("j1", 1)).toBeUndefined();
    expect(ledger.views()[0]!.used.slots).toBe(0);
  });

  it("keeps nothing for workers not connected, and forgets a worker's attempts when it leaves", () => {
    const ledger = new PoolLedger();
    ledger.record(attempt("j0", "elsewhere"));
    expect(ledger.attempt("j0", 1)).toBeUndefined();
    ledger.join(worker("w1"), [attempt("j1", "w1")]);
    ledger.leave("w1");
    expect(ledger.attempt("j1", 1)).toBeUndefined();
    expect(ledger.views()).toEqual([]);
  });

  it("replaces a rejoining worker's attempts with what it holds now, and applies drain and warm changes", () => {
    const ledger = new PoolLedger();
    ledger.join(worker("w1"), [attempt("j1", "w1"), attempt("j2", "w1")]);
    ledger.join(worker("w1", { slots: 8 }), [attempt("j3", "w1")]);
    expect(ledger.attempt("j1", 1)).toBeUndefined();
    expect(ledger.views()).toMatchObject([{ slots: 8, used: { slots: 1 } }]);
    ledger.update("w1", { drain: "agent", warm: { envs: ["e"], repos: [] } });
    expect(ledger.views()).toMatchObject([{ draining: true, warm: { envs: ["e"], repos: [] } }]);
  });

  it("counts assigned attempts that cannot start beside the others as waiting, in the order they were assigned", () => {
    const ledger = new PoolLedger();
    const w = worker("w1", { slots: 1, caps: caps({ cpu_cores: 2, prefetch: 1 }) });
    ledger.join(w, [attempt("j2", "w1", { assignedAt: 2 }), attempt("j1", "w1", { status: "running", jobStatus: "running" })]);
    expect(ledger.views()[0]).toMatchObject({ used: { slots: 1, cpusMilli: 1000 }, waiting: 1 });
    expect(ledger.waiting("j2", 1)).toBe(true);
    expect(ledger.waiting("j1", 1)).toBe(false);
    // Fair share counts the slot held, not the attempt that waits for one.
    expect(ledger.slotsByProject()).toEqual(new Map([["default", 1]]));
    ledger.record({ ...attempt("j1", "w1"), status: "finished" });
    expect(ledger.waiting("j2", 1)).toBe(false);
    expect(ledger.views()[0]).toMatchObject({ used: { slots: 1 }, waiting: 0 });
  });

  it("lets a waiting attempt start only where CPUs and memory allow, and none overtakes it", () => {
    const ledger = new PoolLedger();
    const w = worker("w1", { slots: 3, caps: caps({ cpu_cores: 2, prefetch: 2 }) });
    ledger.join(w, [attempt("j1", "w1", { status: "running", assignedAt: 1 }), attempt("big", "w1", { cpusMilli: 2000, assignedAt: 2 }), attempt("small", "w1", { assignedAt: 3 })]);
    expect(ledger.views()[0]).toMatchObject({ used: { slots: 1 }, waiting: 2 });
  });
});
