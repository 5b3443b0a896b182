import { describe, expect, it } from "vitest";
import { applyReport, deadlineStep, loseAttempt, type Report } from "../../control-plane/src/coordinator/attempt-changes.ts";
import { AttemptWrites, type AttemptWithJob } from "../../control-plane/src/db/attempts.ts";

const attempt = (over: Partial<AttemptWithJob> = {}): AttemptWithJob => ({
  jobId: "j1",
  attempt: 1,
  workerId: "w1",
  status: "assigned",
  cpusMilli: 1000,
  memoryMb: 512,
  gpuIndices: [],
  usage: null,
  retry: null,
  queuedAt: 0,
  assignedAt: 1000,
  startedAt: null,
  finishedAt: null,
  deadlineAt: 61_000,
  exitCode: null,
  failureReason: null,
  jobStatus: "assigned",
  jobAttempt: 1,
  maxRetries: 1,
  timeoutS: 30,
  project: "default",
  ...over,
});
const bounds = { prepareTimeoutMs: 3_600_000, deadlineGraceMs: 60_000 };
const ref = { job_id: "j1", attempt: 1 };
const result = (failure_reason: "worker_lost" | "exit_code" | null, exit_code: number | null): Report => ({
  type: "job_result",
  workerId: "w1",
  payload: { ...ref, exit_code, failure_reason, message: failure_reason ? "said so" : null },
});

describe("what an admitted report does to its attempt", () => {
  it("an acceptance moves the deadline to the preparation bound, once", () => {
    const w = new AttemptWrites();
    expect(applyReport(w, attempt(), { type: "job_accepted", workerId: "w1", payload: ref }, 5000, bounds)).toMatchObject({ status: "assigned", deadlineAt: 3_605_000 });
    expect(applyReport(w, attempt({ status: "running" }), { type: "job_accepted", workerId: "w1", payload: ref }, 5000, bounds)).toBeNull();
  });

  it("a start sets the job's own deadline: its timeout and the grace", () => {
    expect(applyReport(new AttemptWrites(), attempt(), { type: "job_started", workerId: "w1", payload: ref }, 5000, bounds)).toMatchObject({ status: "running", jobStatus: "running", deadlineAt: 95_000 });
  });

  it("a result ends the attempt and the job; a result saying the worker lost the job requeues it while retries remain", () => {
    expect(applyReport(new AttemptWrites(), attempt({ status: "running", jobStatus: "running" }), result(null, 0), 9000, bounds)).toMatchObject({ status: "finished", jobStatus: "completed" });
    expect(applyReport(new AttemptWrites(), attempt({ status: "running", jobStatus: "running" }), result("worker_lost", 137), 9000, bounds)).toMatchObject({ status: "lost", jobStatus: "queued" });
    expect(applyReport(new AttemptWrites(), attempt({ status: "running", jobStatus: "running", jobAttempt: 2, attempt: 2 }), result("worker_lost", 137), 9000, bounds)).toMatchObject({ status: "lost", jobStatus: "failed" });
  });

  it("a result for a canceling attempt frees its slot and leaves the job as the cancel left it", () => {
    expect(applyReport(new AttemptWrites(), attempt({ status: "canceling", jobStatus: "canceled" }), result("exit_code", 143), 9000, bounds)).toMatchObject({ status: "finished", jobStatus: "canceled" });
  });

  it("losing a canceling attempt frees only the slot", () => {
    expect(loseAttempt(new AttemptWrites(), attempt({ status: "canceling", jobStatus: "canceled" }), "gone", 9000)).toMatchObject({ status: "lost", jobStatus: "canceled" });
  });
});

describe("what the sweep does past a deadline", () => {
  it("takes back an assignment, naming the bound it missed, and times out a running attempt", () => {
    expect(deadlineStep(attempt(), 60_000)).toEqual({ kind: "take_back", bound: "START_TIMEOUT_S" });
    expect(deadlineStep(attempt({ deadlineAt: null }), 60_000)).toEqual({ kind: "take_back", bound: "START_TIMEOUT_S" });
    expect(deadlineStep(attempt({ deadlineAt: 3_605_000 }), 60_000)).toEqual({ kind: "take_back", bound: "PREPARE_TIMEOUT_S" });
    expect(deadlineStep(attempt({ status: "running" }), 60_000)).toEqual({ kind: "time_out" });
  });

  it("re-arms the prepare bound of a taken attempt waiting on its agent for a slot, but takes back one never taken", () => {
    expect(deadlineStep(attempt({ deadlineAt: 3_605_000 }), 60_000, true)).toEqual({ kind: "wait" });
    expect(deadlineStep(attempt(), 60_000, true)).toEqual({ kind: "take_back", bound: "START_TIMEOUT_S" });
    expect(deadlineStep(attempt({ status: "running" }), 60_000, true)).toEqual({ kind: "time_out" });
  });
});
