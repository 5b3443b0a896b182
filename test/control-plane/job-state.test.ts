import { describe, expect, it } from "vitest";
import { isTerminal, nextJobState, type JobEvent } from "../../control-plane/src/coordinator/job-state.ts";
import type { JobStatus } from "../../protocol/index.ts";

const ok: JobEvent = { type: "result", exitCode: 0, failureReason: null, retryInMs: null };
const bad: JobEvent = { type: "result", exitCode: 2, failureReason: "exit_code", retryInMs: null };

describe("nextJobState", () => {
  it.each<[JobStatus, JobEvent, string | null]>([
    ["queued", { type: "assign" }, "assigned"],
    ["assigned", { type: "start" }, "running"],
    ["running", ok, "completed"],
    ["assigned", ok, "completed"],
    ["running", bad, "failed/exit_code"],
    ["running", { type: "result", exitCode: 137, failureReason: "oom", retryInMs: null }, "failed/oom"],
    ["running", { type: "result", exitCode: 0, failureReason: "output_too_large", retryInMs: null }, "failed/output_too_large"],
    ["running", { type: "result", exitCode: 1, failureReason: null, retryInMs: null }, "failed/exit_code"],
    ["queued", { type: "cancel" }, "canceled"],
    ["running", { type: "cancel" }, "canceled"],
    ["running", { type: "timeout", retryInMs: null }, "failed/timeout"],
    ["running", { type: "lost", retriesLeft: true }, "queued"],
    ["assigned", { type: "lost", retriesLeft: false }, "failed/worker_lost"],
    // Events that do not apply are ignored: late, duplicated or stale messages.
    ["queued", { type: "start" }, null],
    ["running", { type: "assign" }, null],
    ["queued", ok, null],
    ["completed", { type: "cancel" }, null],
    ["canceled", ok, null],
    ["failed", { type: "lost", retriesLeft: true }, null],
    ["completed", { type: "timeout", retryInMs: null }, null],
  ])("%s + %j -> %s", (from, event, expected) => {
    const t = nextJobState(from, event);
    expect(t && (t.failureReason ? `${t.status}/${t.failureReason}` : t.status)).toBe(expected);
  });

  it("keeps the exit code of a result", () => {
    expect(nextJobState("running", bad)?.exitCode).toBe(2);
    expect(nextJobState("running", ok)?.exitCode).toBe(0);
  });

  it("knows the terminal states", () => {
    expect(["completed", "failed", "canceled"].every((s) => isTerminal(s as JobStatus))).toBe(true);
    expect(["queued", "assigned", "running"].some((s) => isTerminal(s as JobStatus))).toBe(false);
  });
});
