import type { JobStatus } from "../../../protocol/index.ts";
import type { Retention } from "../db/schema.ts";
import type { Settings } from "../settings.ts";

/** What retention keeps for a while, in the order it lets go of them: logs and artifacts first, then the job. */
export const RETENTION_KEYS = ["logs_days", "artifacts_days", "jobs_days"] as const;
export type RetentionKey = (typeof RETENTION_KEYS)[number];
export type RetentionDays = Record<RetentionKey, number>;

export const retentionDefaults = (s: Settings): RetentionDays => ({ logs_days: s.RETENTION_LOGS_DAYS, artifacts_days: s.RETENTION_ARTIFACTS_DAYS, jobs_days: s.RETENTION_JOBS_DAYS });

/** A project's retention as GET /v1/projects/:name shows it: every key's days, and which of them are the defaults. */
export interface EffectiveRetention extends RetentionDays {
  defaults: RetentionKey[];
}

const DAY_MS = 24 * 3600 * 1000;
const TERMINAL: ReadonlySet<JobStatus> = new Set(["completed", "failed", "canceled"]);

export const isTerminal = (status: JobStatus) => TERMINAL.has(status);

/** The project's own days where it set them, the defaults elsewhere. */
export function effectiveRetention(defaults: RetentionDays, own: Retention): EffectiveRetention {
  const days = {} as RetentionDays;
  const fromDefaults: RetentionKey[] = [];
  for (const key of RETENTION_KEYS) {
    const set = own[key];
    days[key] = set ?? defaults[key];
    if (set === undefined) fromDefaults.push(key);
  }
  return { ...days, defaults: fromDefaults };
}

/** Finished before this instant (ms) is expired; null: kept forever (0 days). */
export interface Cutoffs {
  logs: number | null;
  artifacts: number | null;
  jobs: number | null;
}

export function cutoffsOf(days: RetentionDays, now: number): Cutoffs {
  const before = (d: number) => (d === 0 ? null : now - d * DAY_MS);
  // A job that goes takes its logs and artifacts with it, so neither outlives it.
  const jobs = before(days.jobs_days);
  const atMostJobs = (c: number | null) => (jobs === null ? c : c === null ? jobs : Math.max(c, jobs));
  return { logs: atMostJobs(before(days.logs_days)), artifacts: atMostJobs(before(days.artifacts_days)), jobs };
}

/** What still needs a finished job: while any holds, the job and its artifacts stay. */
export interface LiveNeeds {
  /** Unfinished jobs depend on it, or on its array. */
  dependents: boolean;
  /** Tasks of its array are unfinished (an array's children settle on all its tasks). */
  arrayTasks: boolean;
  /** Unfinished jobs name one of its artifacts as an input. */
  readers: boolean;
  /** An attempt's container is not yet confirmed gone by its agent. */
  attempts: boolean;
}

/**
 * Why a job may not be deleted now, or null when it may: it has not finished, or something
 * unfinished still needs it. The sweep asks D1 the same questions (purge.ts LIVE_NEEDS) and
 * skips such jobs, so they do not fill its batches.
 */
export function deletionRefusal(job: { id: string; status: JobStatus }, needs: LiveNeeds): string | null {
  if (!isTerminal(job.status)) return `job ${job.id} is ${job.status}: only a finished job can be deleted (cancel it first)`;
  const why = [
    needs.dependents && "unfinished jobs depend on it",
    needs.arrayTasks && "tasks of its array are unfinished",
    needs.readers && "unfinished jobs read its artifacts",
    needs.attempts && "its container is still being stopped",
  ].filter((w): w is string => typeof w === "string");
  return why.length ? `job ${job.id} is still needed: ${why.join(", ")}` : null;
}
