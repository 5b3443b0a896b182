import { describe, expect, it } from "vitest";
import { EXIT, EXIT_CODES_HELP, jobExitCode } from "../../cli/src/exit-codes.ts";
import type { FailureReason, JobStatus } from "../../protocol/index.ts";

const job = (status: JobStatus, failure_reason: FailureReason | null = null, exit_code: number | null = null) => ({ status, failure_reason, exit_code });

describe("jobExitCode", () => {
  it.each([
    [job("completed", null, 0), 0],
    [job("failed", "exit_code", 3), 3],
    [job("failed", "exit_code", 255), 255],
    [job("failed", "timeout", 143), EXIT.timeout],
    [job("failed", "oom", 137), EXIT.oom],
    [job("failed", "image_error"), EXIT.noExitCode],
    [job("failed", "input_error"), EXIT.noExitCode],
    [job("failed", "worker_lost"), EXIT.noExitCode],
    [job("failed", "output_too_large", 0), EXIT.noExitCode],
    [job("failed", "canceled_by_worker"), EXIT.noExitCode],
    [job("failed", "internal"), EXIT.noExitCode],
    [job("failed", "exit_code", null), EXIT.noExitCode],
    [job("canceled"), EXIT.canceled],
  ])("ends %j with %i", (j, code) => {
    expect(jobExitCode(j)).toBe(code);
  });

  it("documents every code it can give", () => {
    for (const code of [EXIT.ok, EXIT.error, EXIT.usage, EXIT.auth, EXIT.timeout, EXIT.noExitCode, EXIT.canceled, EXIT.oom]) {
      expect(EXIT_CODES_HELP).toMatch(new RegExp(`^  ${code} `, "m"));
    }
  });
});
