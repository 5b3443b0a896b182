import { describe, expect, it } from "vitest";
import { datasetRefusal, loosened, queueRefusal, startHold } from "../../control-plane/src/quotas.ts";

describe("quota decisions", () => {
  it("hold a start past max_running_jobs, and a GPU job past max_gpus, but not a CPU job then", () => {
    expect(startHold({}, { running_jobs: 100, gpus: 100 }, 8)).toBeNull();
    expect(startHold({ max_running_jobs: 2 }, { running_jobs: 1, gpus: 0 }, 0)).toBeNull();
    expect(startHold({ max_running_jobs: 2 }, { running_jobs: 2, gpus: 0 }, 0)).toMatchObject({ quota: "max_running_jobs", limit: 2, usage: 2 });
    expect(startHold({ max_gpus: 4 }, { running_jobs: 0, gpus: 3 }, 2)).toMatchObject({ quota: "max_gpus", limit: 4, usage: 3, message: expect.stringMatching(/needs 2/) });
    expect(startHold({ max_gpus: 4 }, { running_jobs: 0, gpus: 4 }, 0)).toBeNull();
  });

  it("refuse what would take the queue or the storage past its quota, and nothing at it", () => {
    expect(queueRefusal({ max_queued_jobs: 3 }, { queued_jobs: 2 }, 1)).toBeNull();
    expect(queueRefusal({ max_queued_jobs: 3 }, { queued_jobs: 3 }, 1)).toMatchObject({ quota: "max_queued_jobs", limit: 3, usage: 3 });
    expect(datasetRefusal({ max_dataset_bytes: 10 }, { dataset_bytes: 4 }, 6)).toBeNull();
    expect(datasetRefusal({ max_dataset_bytes: 10 }, { dataset_bytes: 4 }, 7)).toMatchObject({ quota: "max_dataset_bytes", usage: 4 });
    expect(datasetRefusal({}, { dataset_bytes: 1e15 }, 1e15)).toBeNull();
  });

  it("tell a raised or removed quota from a kept, lowered or added one", () => {
    expect(loosened({ max_queued_jobs: 10 }, { max_queued_jobs: 10 })).toBeNull();
    expect(loosened({ max_queued_jobs: 10 }, { max_queued_jobs: 5, max_gpus: 1 })).toBeNull();
    expect(loosened({}, { max_running_jobs: 1 })).toBeNull();
    expect(loosened({ max_queued_jobs: 10 }, { max_queued_jobs: 11 })).toBe("max_queued_jobs");
    expect(loosened({ max_queued_jobs: 10, max_gpus: 2 }, { max_queued_jobs: 10 })).toBe("max_gpus");
  });
});
