import { describe, expect, it } from "vitest";
import { cutoffsOf, deletionRefusal, effectiveRetention } from "../../control-plane/src/retention/policy.ts";

const DAY = 24 * 3600 * 1000;
const defaults = { logs_days: 30, artifacts_days: 30, jobs_days: 90 };
const now = 1_000 * DAY;
const none = { dependents: false, arrayTasks: false, readers: false, attempts: false };

describe("retention (pure)", () => {
  it("takes a project's own days where it set them and names the rest as defaults", () => {
    expect(effectiveRetention(defaults, {})).toEqual({ ...defaults, defaults: ["logs_days", "artifacts_days", "jobs_days"] });
    expect(effectiveRetention(defaults, { artifacts_days: 7, jobs_days: 0 })).toEqual({ logs_days: 30, artifacts_days: 7, jobs_days: 0, defaults: ["logs_days"] });
  });

  it("expires what finished before now minus its days, and keeps forever at 0", () => {
    expect(cutoffsOf(defaults, now)).toEqual({ logs: now - 30 * DAY, artifacts: now - 30 * DAY, jobs: now - 90 * DAY });
    expect(cutoffsOf({ logs_days: 0, artifacts_days: 0, jobs_days: 0 }, now)).toEqual({ logs: null, artifacts: null, jobs: null });
  });

  it("never keeps logs or artifacts past the job itself", () => {
    // Logs kept forever, artifacts 30 days, jobs 10: both go when the job does.
    expect(cutoffsOf({ logs_days: 0, artifacts_days: 30, jobs_days: 10 }, now)).toEqual({ logs: now - 10 * DAY, artifacts: now - 10 * DAY, jobs: now - 10 * DAY });
    expect(cutoffsOf({ logs_days: 5, artifacts_days: 30, jobs_days: 10 }, now).logs).toBe(now - 5 * DAY);
  });

  it("refuses to delete an unfinished job, naming its status", () => {
    for (const status of ["queued", "assigned", "running"] as const) {
      expect(deletionRefusal({ id: "j_1", status }, none)).toBe(`job j_1 is ${status}: only a finished job can be deleted (cancel it first)`);
    }
    for (const status of ["completed", "failed", "canceled"] as const) expect(deletionRefusal({ id: "j_1", status }, none)).toBeNull();
  });

  it("refuses to delete a finished job that something unfinished still needs, saying what", () => {
    expect(deletionRefusal({ id: "j_1", status: "completed" }, { ...none, dependents: true })).toBe("job j_1 is still needed: unfinished jobs depend on it");
    expect(deletionRefusal({ id: "j_1", status: "failed" }, { ...none, arrayTasks: true, readers: true })).toBe("job j_1 is still needed: tasks of its array are unfinished, unfinished jobs read its artifacts");
    expect(deletionRefusal({ id: "j_1", status: "canceled" }, { ...none, attempts: true })).toBe("job j_1 is still needed: its container is still being stopped");
  });
});
