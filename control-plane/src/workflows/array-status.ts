import type { JobStatus } from "../../../protocol/index.ts";

/**
 * An array's status from its tasks' (pure): queued while none has left the queue, running
 * while any is unfinished, then failed if any failed, canceled if any was canceled, else completed.
 */
export function arrayStatus(byStatus: Partial<Record<JobStatus, number>>): JobStatus {
  const n = (s: JobStatus) => byStatus[s] ?? 0;
  if (n("assigned") + n("running") > 0) return "running";
  if (n("queued") > 0) return n("completed") + n("failed") + n("canceled") > 0 ? "running" : "queued";
  if (n("failed") > 0) return "failed";
  if (n("canceled") > 0) return "canceled";
  return "completed";
}
