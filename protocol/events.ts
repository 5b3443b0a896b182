import { z } from "zod";
import { JobStatus } from "./job.ts";

/**
 * A change of a job's status, as the events stream (`GET /v1/events`, SSE `event: job`, `id`:
 * the event's id) and webhooks deliver it. Ids increase in commit order across the grid, so an
 * id is also the cursor a reader resumes from.
 */
export const JobEventType = z.enum(["job.queued", "job.assigned", "job.running", "job.completed", "job.failed", "job.canceled"]);
export type JobEventType = z.infer<typeof JobEventType>;

export const JobEvent = z.object({
  id: z.number().int().positive(),
  type: JobEventType,
  job_id: z.string(),
  project: z.string(),
  pool: z.string(),
  status: JobStatus,
  /** The attempt the job is on (0 before its first assignment). */
  attempt: z.number().int().min(0),
  exit_code: z.number().int().nullable(),
  failure_reason: z.string().nullable(),
  /** When the change happened, ms since the epoch. */
  at: z.number().int(),
});
export type JobEvent = z.infer<typeof JobEvent>;

export const jobEventType = (status: JobStatus): JobEventType => `job.${status}`;
