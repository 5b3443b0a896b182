import { z } from "zod";

/*
 * What a job says about the jobs around it: the array it is a task of, the jobs it waits for,
 * and how a failed attempt is retried. Shared by the control plane (which decides) and the
 * agent (which shows a task its index and attempt).
 */

/** Every bound of a workflow, with its default where it has one. */
export const WORKFLOW_LIMITS = {
  array_count: { min: 1, max: 10_000 },
  depends_on: { max: 32 },
  retry_max: { min: 0, max: 20, default: 1 },
  retry_exit_codes: { max: 32 },
  backoff_s: { min: 0, max: 3600, default: 10 },
  /** A retry waits backoff_s, doubled for each further attempt, at most this long. */
  backoff_cap_s: 3600,
  queue_ttl_s: { min: 1, max: 30 * 24 * 3600 },
  batch_jobs: { max: 1000 },
  /** Jobs a batch creates in all, array tasks counted: one request's work stays bounded. */
  batch_tasks: { max: 10_000 },
  /** An array's tasks each store the whole spec: count × its JSON size is at most this. */
  array_spec_bytes: 64 * 1024 * 1024,
} as const;

/** `"array": {"count": N}`: N tasks in one submit, each a job that sees GRIDX_ARRAY_INDEX. */
export const ArrayRequest = z
  .object({ count: z.number().int("count must be a whole number").min(WORKFLOW_LIMITS.array_count.min).max(WORKFLOW_LIMITS.array_count.max) })
  .strict();

/** A task's place in its array, as stored in its spec: `index` is null only in the request's own template. */
export const ArrayPlace = z.object({ count: z.number().int().min(1), index: z.number().int().min(0).nullable() });
export type ArrayPlace = z.infer<typeof ArrayPlace>;

/** `completed`: the parent must end completed; `finished`: it must end, however. */
export const DependencyCondition = z.enum(["completed", "finished"]);
export type DependencyCondition = z.infer<typeof DependencyCondition>;

/**
 * A job id (`j_…`), an array id (`a_…`: every task of it), or in a batch submit `$N`: the
 * batch's item N.
 */
export const DependencyRef = z.string().regex(/^(j_[0-9a-z]{1,60}|a_[0-9a-z]{1,60}|\$[0-9]{1,4})$/, "a job id (j_…), an array id (a_…) or, in a batch, $N for its item N");
export const Dependency = z.object({ job: DependencyRef, condition: DependencyCondition.default("completed") }).strict();
export type Dependency = z.infer<typeof Dependency>;

/** The outcomes of an attempt a retry policy can name. */
export const RetryOn = z.enum(["exit_code", "timeout", "oom", "worker_lost"]);
export type RetryOn = z.infer<typeof RetryOn>;

export const RetryPolicy = z
  .object({
    on: z
      .array(RetryOn)
      .min(1, "name at least one outcome: exit_code, timeout, oom or worker_lost")
      .refine((on) => new Set(on).size === on.length, "an outcome is named twice"),
    /** With `exit_code`: only these codes are retried; any non-zero code when absent. */
    exit_codes: z
      .array(z.number().int().min(1).max(255))
      .min(1)
      .max(WORKFLOW_LIMITS.retry_exit_codes.max, `at most ${WORKFLOW_LIMITS.retry_exit_codes.max} exit codes`)
      .optional(),
    max: z.number().int().min(WORKFLOW_LIMITS.retry_max.min).max(WORKFLOW_LIMITS.retry_max.max).default(WORKFLOW_LIMITS.retry_max.default),
    backoff_s: z.number().int().min(WORKFLOW_LIMITS.backoff_s.min).max(WORKFLOW_LIMITS.backoff_s.max).default(WORKFLOW_LIMITS.backoff_s.default),
  })
  .strict()
  .refine((p) => p.exit_codes === undefined || p.on.includes("exit_code"), { message: "exit_codes needs exit_code in on", path: ["exit_codes"] });
export type RetryPolicy = z.infer<typeof RetryPolicy>;

export const QueueTtl = z.number().int().min(WORKFLOW_LIMITS.queue_ttl_s.min).max(WORKFLOW_LIMITS.queue_ttl_s.max);

/** Replaces `{index}` in an array task's input fields with its index. */
export const expandIndex = (template: string, index: number | null): string => (index === null ? template : template.replaceAll("{index}", String(index)));
