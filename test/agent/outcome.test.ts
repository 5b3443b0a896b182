import { describe, expect, it } from "vitest";
import { DockerError, DockerTimeoutError } from "../../agent/src/docker/engine.ts";
import { classifyExit, failedStep, prepareFailure, type ExitFacts } from "../../agent/src/runner/outcome.ts";
import { TaskError } from "../../agent/src/runner/runner.ts";
import { JobLimits } from "../../protocol/index.ts";

const limits = JobLimits.parse({ timeout_s: 60, memory_mb: 128 });
const facts = (over: Partial<ExitFacts> = {}): ExitFacts => ({ exitCode: 0, stopReason: null, oomKilled: false, outputOver: null, uploadError: null, limits, ...over });

describe("classifyExit", () => {
  it("passes a clean exit and blames a non-zero one on the job", () => {
    expect(classifyExit(facts())).toEqual({ exit_code: 0, failure_reason: null, message: null });
    expect(classifyExit(facts({ exitCode: 3 }))).toEqual({ exit_code: 3, failure_reason: "exit_code", message: "the job exited with code 3" });
  });

  it("names what the agent stopped it for", () => {
    expect(classifyExit(facts({ exitCode: 137, stopReason: "timeout" }))).toEqual({ exit_code: 137, failure_reason: "timeout", message: "the job ran longer than its timeout of 60s" });
    expect(classifyExit(facts({ exitCode: 143, stopReason: "user" }))).toEqual({ exit_code: 143, failure_reason: "canceled_by_worker", message: "stopped: user" });
    expect(classifyExit(facts({ exitCode: 143, stopReason: "drain" }))).toMatchObject({ failure_reason: "canceled_by_worker", message: "stopped: drain" });
    expect(classifyExit(facts({ exitCode: 137, oomKilled: true }))).toEqual({ exit_code: 137, failure_reason: "oom", message: "the job used more than its memory limit of 128 MiB" });
  });

  it("says output_too_large with the reason the output broke its limits, even for an exit 0", () => {
    expect(classifyExit(facts({ outputOver: "500 file(s) were left" }))).toEqual({ exit_code: 0, failure_reason: "output_too_large", message: "500 file(s) were left" });
    expect(classifyExit(facts({ exitCode: 143, stopReason: "output_too_large" }))).toMatchObject({ failure_reason: "output_too_large" });
    // Over its limits is the job's doing, whatever else stopped it.
    expect(classifyExit(facts({ stopReason: "timeout", outputOver: "too many" }))).toMatchObject({ failure_reason: "output_too_large" });
  });

  it("blames a lost lease on the worker and a failed upload on the agent, before anything the job did", () => {
    expect(classifyExit(facts({ exitCode: 143, stopReason: "lease", outputOver: "too many", oomKilled: true }))).toMatchObject({ exit_code: 143, failure_reason: "worker_lost", message: expect.stringContaining("lease") });
    expect(classifyExit(facts({ exitCode: 1, uploadError: "HTTP 503", outputOver: "too many" }))).toEqual({ exit_code: 1, failure_reason: "internal", message: "the job ran, but its outputs could not be uploaded: HTTP 503" });
  });
});

describe("failedStep and prepareFailure", () => {
  const hung = new DockerTimeoutError("POST /containers/create", 30_000);

  it("make an engine that does not answer the agent's failure, naming the call, whatever the step", () => {
    expect(failedStep(hung, "image_error", "could not create the container")).toEqual({ exit_code: null, failure_reason: "internal", message: "the Docker engine did not answer POST /containers/create within 30s" });
    expect(prepareFailure(hung, null)).toMatchObject({ failure_reason: "internal", message: hung.message });
    // A lapsed lease is the worker's loss, so the job is requeued, not failed as canceled.
    expect(prepareFailure(new Error("aborted"), "lease")).toMatchObject({ failure_reason: "worker_lost" });
    expect(prepareFailure(new Error("aborted"), "drain")).toMatchObject({ failure_reason: "canceled_by_worker" });
  });

  it("keep the step's own reason for anything else", () => {
    expect(failedStep(new DockerError(404, "No such image: x:1"), "image_error", "image x:1 is not on this worker")).toEqual({ exit_code: null, failure_reason: "image_error", message: "image x:1 is not on this worker: No such image: x:1" });
    expect(prepareFailure(new TaskError("image_error", "the build failed"), null)).toEqual({ exit_code: null, failure_reason: "image_error", message: "the build failed" });
    expect(prepareFailure(new Error("ENOSPC"), null)).toEqual({ exit_code: null, failure_reason: "input_error", message: "could not prepare the job's input: ENOSPC" });
    expect(prepareFailure(hung, "user")).toEqual({ exit_code: null, failure_reason: "canceled_by_worker", message: "stopped while preparing (user)" });
  });
});
