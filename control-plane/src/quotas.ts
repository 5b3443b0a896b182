import type { Quotas } from "./db/schema.ts";

/** What a project holds now, as quotas count it (and `GET /v1/projects/:project` shows it). */
export interface QuotaUsage {
  running_jobs: number;
  queued_jobs: number;
  gpus: number;
  dataset_bytes: number;
}

/** A quota that refuses or holds something, with its limit and the usage that hit it. */
export interface QuotaHit {
  quota: keyof Quotas;
  limit: number;
  usage: number;
  message: string;
}

/**
 * Why a queued job of a project may not start now, or null: its running-jobs or GPU quota is
 * used up. Pure; the scheduler holds such jobs in `queued` and the API shows the reason.
 */
export function startHold(quotas: Quotas, usage: Pick<QuotaUsage, "running_jobs" | "gpus">, gpus: number): QuotaHit | null {
  if (quotas.max_running_jobs !== undefined && usage.running_jobs + 1 > quotas.max_running_jobs) {
    return { quota: "max_running_jobs", limit: quotas.max_running_jobs, usage: usage.running_jobs, message: `waiting for quota max_running_jobs: ${usage.running_jobs} of ${quotas.max_running_jobs} jobs running` };
  }
  if (gpus > 0 && quotas.max_gpus !== undefined && usage.gpus + gpus > quotas.max_gpus) {
    return { quota: "max_gpus", limit: quotas.max_gpus, usage: usage.gpus, message: `waiting for quota max_gpus: ${usage.gpus} of ${quotas.max_gpus} GPUs in use, this job needs ${gpus}` };
  }
  return null;
}

/** Whether `count` more queued jobs are over the project's queue quota. */
export function queueRefusal(quotas: Quotas, usage: Pick<QuotaUsage, "queued_jobs">, count: number): QuotaHit | null {
  const limit = quotas.max_queued_jobs;
  if (limit === undefined || usage.queued_jobs + count <= limit) return null;
  return { quota: "max_queued_jobs", limit, usage: usage.queued_jobs, message: `quota max_queued_jobs: ${usage.queued_jobs} of ${limit} jobs are queued already` };
}

/** Whether `bytes` more of datasets are over the project's storage quota. */
export function datasetRefusal(quotas: Quotas, usage: Pick<QuotaUsage, "dataset_bytes">, bytes: number): QuotaHit | null {
  const limit = quotas.max_dataset_bytes;
  if (limit === undefined || usage.dataset_bytes + bytes <= limit) return null;
  return { quota: "max_dataset_bytes", limit, usage: usage.dataset_bytes, message: `quota max_dataset_bytes: the project holds ${usage.dataset_bytes} of ${limit} bytes; this upload needs ${bytes}` };
}

/**
 * The first quota that `next` raises or removes compared with `current`, or null when `next`
 * only keeps or lowers them: an owner may tighten its project's quotas, not loosen what the
 * admin set.
 */
export function loosened(current: Quotas, next: Quotas): keyof Quotas | null {
  for (const key of Object.keys(current) as (keyof Quotas)[]) {
    const now = current[key];
    const then = next[key];
    if (now !== undefined && (then === undefined || then > now)) return key;
  }
  return null;
}
