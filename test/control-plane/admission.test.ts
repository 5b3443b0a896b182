import { describe, expect, it } from "vitest";
import { admission, reconcile } from "../../control-plane/src/coordinator/admission.ts";
import type { AttemptWithJob } from "../../control-plane/src/db/attempts.ts";

const attempt = (over: Partial<AttemptWithJob> = {}): AttemptWithJob => ({
  jobId: "j1",
  attempt: 1,
  workerId: "w1",
  status: "running",
  cpusMilli: 1000,
  memoryMb: 512,
  gpuIndices: [],
  usage: null,
  retry: null,
  queuedAt: 0,
  assignedAt: 0,
  startedAt: 1,
  finishedAt: null,
  deadlineAt: null,
  exitCode: null,
  failureReason: null,
  jobStatus: "running",
  jobAttempt: 1,
  maxRetries: 2,
  timeoutS: 60,
  project: "default",
  ...over,
});
const ref = { job_id: "j1", attempt: 1 };

describe("admission: only the worker holding an attempt changes it", () => {
  it("admits the holder", () => {
    const held = attempt();
    expect(admission("w1", ref, held, undefined)).toEqual({ kind: "admit", attempt: held });
  });

  it("refuses another worker, whether the attempt is held or over", () => {
    expect(admission("w2", ref, attempt(), undefined).kind).toBe("refused");
    expect(admission("w2", ref, undefined, attempt({ status: "lost" })).kind).toBe("refused");
    expect(admission("w2", ref, undefined, attempt()).kind).toBe("refused");
  });

  it("refuses an attempt that does not exist", () => {
    expect(admission("w1", ref, undefined, undefined)).toMatchObject({ kind: "refused", reason: expect.stringContaining("attempt 1 of job j1") });
  });

  it("fences the former holder's late report of an attempt that is over", () => {
    expect(admission("w1", ref, undefined, attempt({ status: "lost" }))).toMatchObject({ kind: "fenced", reason: expect.stringContaining("lost") });
  });

  it("admits the holder D1 names when the ledger missed the attempt (a reconnect racing the old socket's close)", () => {
    const recorded = attempt({ status: "running" });
    expect(admission("w1", ref, undefined, recorded)).toEqual({ kind: "admit", attempt: recorded });
  });
});

describe("reconcile: a reconnected agent and the record agree", () => {
  it("re-sends unreported assignments, ends unreported cancels, loses unreported runs, and cancels what is not the agent's", () => {
    const assigned = attempt({ jobId: "a", status: "assigned" });
    const canceling = attempt({ jobId: "c", status: "canceling" });
    const running = attempt({ jobId: "r" });
    const kept = attempt({ jobId: "k" });
    const steps = reconcile([assigned, canceling, running, kept], [{ job_id: "k", attempt: 1 }, { job_id: "x", attempt: 3 }]);
    expect(steps).toEqual([
      { kind: "resend", attempt: assigned },
      { kind: "confirm_cancel", attempt: canceling },
      { kind: "lost", attempt: running },
      { kind: "cancel_stale", ref: { job_id: "x", attempt: 3 } },
    ]);
  });
});
