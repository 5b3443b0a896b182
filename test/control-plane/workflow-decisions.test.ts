import { describe, expect, it } from "vitest";
import { RetryPolicy } from "../../protocol/index.ts";
import { nextJobState } from "../../control-plane/src/coordinator/job-state.ts";
import { arrayStatus } from "../../control-plane/src/workflows/array-status.ts";
import { dependencyVerdict, edgeState, findCycle, topologicalOrder, waitingFor } from "../../control-plane/src/workflows/dependencies.ts";
import { formatMemory, neverFitsReason, pinnedWait, type PinnedWorker } from "../../control-plane/src/workflows/fit.ts";
import { backoffMs, lostRetriesLeft, retryAfterMs } from "../../control-plane/src/workflows/retry-policy.ts";
import { totalUsage } from "../../control-plane/src/workflows/usage.ts";

const job = (status: "queued" | "running" | "completed" | "failed" | "canceled") => ({ kind: "job" as const, status });
const array = (count: number, byStatus: Record<string, number>) => ({ kind: "array" as const, count, byStatus });

describe("dependencies (pure)", () => {
  it("meets a completed-edge only on completed, a finished-edge on any end", () => {
    expect(edgeState({ parent: "j_a", condition: "completed", state: job("completed") })).toBe("met");
    expect(edgeState({ parent: "j_a", condition: "completed", state: job("running") })).toBe("waiting");
    expect(edgeState({ parent: "j_a", condition: "completed", state: job("failed") })).toEqual({ never: "j_a ended failed, and this job needs it completed" });
    expect(edgeState({ parent: "j_a", condition: "finished", state: job("canceled") })).toBe("met");
    expect(edgeState({ parent: "j_a", condition: "finished", state: undefined })).toEqual({ never: "j_a no longer exists" });
  });

  it("judges an array parent by all its tasks", () => {
    expect(edgeState({ parent: "a_x", condition: "completed", state: array(3, { completed: 2, running: 1 }) })).toBe("waiting");
    expect(edgeState({ parent: "a_x", condition: "completed", state: array(3, { completed: 3 }) })).toBe("met");
    expect(edgeState({ parent: "a_x", condition: "completed", state: array(3, { completed: 1, failed: 1, queued: 1 }) })).toEqual({
      never: "1 of the 3 tasks of a_x ended failed or canceled, and this job needs them all completed",
    });
    expect(edgeState({ parent: "a_x", condition: "finished", state: array(3, { completed: 1, failed: 2 }) })).toBe("met");
    expect(edgeState({ parent: "a_x", condition: "finished", state: array(3, { failed: 2, running: 1 }) })).toBe("waiting");
  });

  it("fails on the first edge that can never hold, else waits on every open one, else releases", () => {
    const edges = [
      { parent: "j_a", condition: "completed" as const, state: job("running") },
      { parent: "j_b", condition: "completed" as const, state: job("failed") },
    ];
    expect(dependencyVerdict(edges)).toEqual({ kind: "fail", parent: "j_b", message: "dependency_failed: j_b ended failed, and this job needs it completed" });
    expect(dependencyVerdict([edges[0]!, { parent: "j_c", condition: "finished", state: job("queued") }])).toEqual({ kind: "wait", on: ["j_a", "j_c"] });
    expect(dependencyVerdict([{ parent: "j_a", condition: "completed", state: job("completed") }])).toEqual({ kind: "release" });
    expect(dependencyVerdict([])).toEqual({ kind: "release" });
    expect(waitingFor(["j_a"])).toBe("waiting for j_a");
    expect(waitingFor(["j_a", "j_b", "j_c"])).toBe("waiting for j_a and 2 more");
  });

  it("finds a cycle among batch items, and orders an acyclic batch parents first", () => {
    expect(findCycle([[1], [2], [0]])).toEqual([0, 1, 2, 0]);
    expect(findCycle([[], [0], [1, 0]])).toBeNull();
    expect(findCycle([[1], [1]])).toEqual([1, 1]);
    expect(topologicalOrder([[2], [], [1]])).toEqual([1, 2, 0]);
  });

  it("gives an array one status from its tasks'", () => {
    expect(arrayStatus({ queued: 4 })).toBe("queued");
    expect(arrayStatus({ queued: 3, completed: 1 })).toBe("running");
    expect(arrayStatus({ running: 1, completed: 3 })).toBe("running");
    expect(arrayStatus({ completed: 3, failed: 1, canceled: 1 })).toBe("failed");
    expect(arrayStatus({ completed: 3, canceled: 1 })).toBe("canceled");
    expect(arrayStatus({ completed: 4 })).toBe("completed");
  });
});

describe("retry policy (pure)", () => {
  const policy = RetryPolicy.parse({ on: ["exit_code", "oom"], exit_codes: [3], max: 2, backoff_s: 5 });

  it("retries the outcomes and exit codes it names, up to max retries, with doubling backoff", () => {
    expect(retryAfterMs(policy, { attempt: 1, failureReason: "exit_code", exitCode: 3 })).toBe(5000);
    expect(retryAfterMs(policy, { attempt: 2, failureReason: "oom", exitCode: 137 })).toBe(10_000);
    expect(retryAfterMs(policy, { attempt: 3, failureReason: "exit_code", exitCode: 3 })).toBeNull();
    expect(retryAfterMs(policy, { attempt: 1, failureReason: "exit_code", exitCode: 4 })).toBeNull();
    expect(retryAfterMs(policy, { attempt: 1, failureReason: "timeout", exitCode: null })).toBeNull();
    expect(retryAfterMs(null, { attempt: 1, failureReason: "exit_code", exitCode: 3 })).toBeNull();
    expect(backoffMs({ backoff_s: 600 }, 10)).toBe(3_600_000);
  });

  it("retries a lost attempt under max_retries or a policy naming worker_lost, whichever allows more", () => {
    expect(lostRetriesLeft(0, null, 1)).toBe(false);
    expect(lostRetriesLeft(2, null, 2)).toBe(true);
    expect(lostRetriesLeft(0, RetryPolicy.parse({ on: ["worker_lost"], max: 3 }), 3)).toBe(true);
    expect(lostRetriesLeft(0, policy, 1)).toBe(false);
  });

  it("refuses a policy that cannot mean anything", () => {
    expect(RetryPolicy.safeParse({ on: [] }).success).toBe(false);
    expect(RetryPolicy.safeParse({ on: ["timeout"], exit_codes: [1] }).error?.issues[0]?.path).toEqual(["exit_codes"]);
    expect(RetryPolicy.safeParse({ on: ["exit_code"], max: 21 }).success).toBe(false);
  });

  it("sends a failed attempt back to the queue when the event carries a retry", () => {
    expect(nextJobState("running", { type: "result", exitCode: 3, failureReason: "exit_code", retryInMs: 5000 })).toEqual({ status: "queued", failureReason: null, exitCode: null, retryInMs: 5000 });
    expect(nextJobState("running", { type: "result", exitCode: 3, failureReason: "exit_code", retryInMs: null })).toMatchObject({ status: "failed" });
    expect(nextJobState("running", { type: "timeout", retryInMs: 0 })).toMatchObject({ status: "queued", retryInMs: 0 });
    expect(nextJobState("running", { type: "result", exitCode: 0, failureReason: null, retryInMs: null })).toMatchObject({ status: "completed" });
  });
});

describe("fit and usage (pure)", () => {
  const worker = (memory_mb: number, cpu_cores = 8, gpus = 0, labels: Record<string, string> = {}) => ({
    caps: { memory_mb, cpu_cores, gpus: Array.from({ length: gpus }, (_, index) => ({ index, model: "g", memory_mb: 1 })), labels },
  });
  const req = (over: Partial<{ memory_mb: number; cpus: number; gpus: number; labels: Record<string, string> }> = {}) => ({ memory_mb: 512, cpus: 1, gpus: 0, labels: {}, ...over });

  it("says what no online worker can ever give, in the words pending_reason uses", () => {
    expect(neverFitsReason(req({ memory_mb: 102_400 }), [worker(24_576), worker(8192)], "gpu")).toBe("no online worker can ever fit it: needs 100 GiB memory, the largest online worker has 24 GiB");
    expect(neverFitsReason(req({ gpus: 2, labels: { zone: "eu" } }), [worker(4096, 8, 1)], "p")).toBe(
      "no online worker can ever fit it: needs 2 GPUs, the most any online worker has is 1; and label zone=eu, which no online worker has",
    );
    expect(neverFitsReason(req({ memory_mb: 8192, gpus: 1 }), [worker(16_384), worker(4096, 8, 1)], "p")).toContain("but none has all of them");
    expect(neverFitsReason(req(), [worker(1024)], "p")).toBeNull();
    expect(neverFitsReason(req(), [], "p")).toBe("no worker of pool p is online");
    expect(formatMemory(512)).toBe("512 MiB");
    expect(formatMemory(1536)).toBe("1.5 GiB");
  });

  it("says what a job pinned to one worker waits for: that worker, by name", () => {
    const on = (over: Partial<PinnedWorker> = {}): PinnedWorker => ({ id: "w_1", name: "lab-1", online: true, draining: false, ...worker(8192), ...over });
    expect(pinnedWait("w_1", undefined, req())).toBe("pinned to worker w_1, which is no longer in the pool");
    expect(pinnedWait("w_1", on({ online: false }), req())).toBe("pinned to worker lab-1 (w_1), which is offline");
    expect(pinnedWait("w_1", on({ draining: true }), req())).toBe("pinned to worker lab-1 (w_1), which is draining");
    expect(pinnedWait("w_1", on(), req(), "gvisor")).toBe("pinned to worker lab-1 (w_1), which does not offer gvisor");
    expect(pinnedWait("w_1", on(), req({ memory_mb: 16_384 }))).toBe("pinned to worker lab-1 (w_1), which can never fit it: needs 16 GiB memory, it has 8 GiB");
    expect(pinnedWait("w_1", on(), req({ labels: { zone: "eu" } }))).toBe("pinned to worker lab-1 (w_1), which can never fit it: needs label zone=eu, which it lacks");
    expect(pinnedWait("w_1", on(), req())).toBe("waiting for a free slot on worker lab-1 (w_1)");
    expect(pinnedWait("w_1", on({ name: undefined }), req())).toBe("waiting for a free slot on worker w_1");
  });

  it("adds up attempts' usage, taking the largest peak", () => {
    expect(totalUsage([null])).toBeNull();
    expect(totalUsage([{ cpu_s: 1.5, peak_memory_mb: 100, gpu_s: 0, wall_s: 2 }, null, { cpu_s: 0.25, peak_memory_mb: 300, gpu_s: 4, wall_s: 2 }])).toEqual({ cpu_s: 1.75, peak_memory_mb: 300, gpu_s: 4, wall_s: 4 });
  });
});
