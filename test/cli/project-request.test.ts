import { describe, expect, it } from "vitest";
import { UsageError } from "../../cli/src/errors.ts";
import { mergeQuotas, quotaChanges } from "../../cli/src/project-request.ts";

describe("quotaChanges", () => {
  it("reads each quota flag into its API field; none removes a quota", () => {
    expect(quotaChanges({ "max-running": "8", "max-queued": "1000", "max-gpus": "none", "max-dataset-bytes": "500g" })).toEqual({
      max_running_jobs: 8,
      max_queued_jobs: 1000,
      max_gpus: null,
      max_dataset_bytes: 500 * 1024 ** 3,
    });
    expect(quotaChanges({ "max-running": "0", "max-dataset-bytes": "NONE" })).toEqual({ max_running_jobs: 0, max_dataset_bytes: null });
    expect(quotaChanges({ weight: "2" })).toEqual({});
  });

  it.each([
    [{ "max-running": "-1" }, /--max-running takes a whole number/],
    [{ "max-queued": "lots" }, /--max-queued takes a whole number/],
    [{ "max-gpus": "1.5" }, /--max-gpus takes a whole number/],
    [{ "max-dataset-bytes": "big" }, /--max-dataset-bytes takes a size/],
  ])("refuses %j as a usage error", (flags, message) => {
    expect(() => quotaChanges(flags)).toThrow(UsageError);
    expect(() => quotaChanges(flags)).toThrow(message);
  });
});

describe("mergeQuotas", () => {
  it("applies the changes to the current quotas and keeps the rest, since PATCH replaces them whole", () => {
    const current = { max_running_jobs: 4, max_gpus: 2, max_dataset_bytes: 1024 };
    expect(mergeQuotas(current, { max_gpus: null, max_queued_jobs: 100, max_running_jobs: 8 })).toEqual({ max_running_jobs: 8, max_queued_jobs: 100, max_dataset_bytes: 1024 });
    expect(current).toEqual({ max_running_jobs: 4, max_gpus: 2, max_dataset_bytes: 1024 });
    expect(mergeQuotas({}, { max_gpus: null })).toEqual({});
  });
});
