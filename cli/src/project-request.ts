import type { ParseArgsOptionsConfig } from "node:util";
// Types only: a project's quotas as the control plane stores them (an absent one is no limit).
import type { Quotas } from "../../control-plane/src/db/schema.ts";
import { byteSize, integer } from "./args.ts";

type QuotaKey = keyof Quotas;

/** The flags `projects create` and `projects set` share: one per quota, plus the weight. */
export const QUOTA_FLAGS = {
  "max-running": { type: "string" },
  "max-queued": { type: "string" },
  "max-gpus": { type: "string" },
  "max-dataset-bytes": { type: "string" },
  weight: { type: "string" },
} as const satisfies ParseArgsOptionsConfig;

const QUOTA_OF = {
  "max-running": "max_running_jobs",
  "max-queued": "max_queued_jobs",
  "max-gpus": "max_gpus",
  "max-dataset-bytes": "max_dataset_bytes",
} as const satisfies Record<string, QuotaKey>;
type QuotaFlag = keyof typeof QUOTA_OF;

export const QUOTA_FLAGS_HELP = `  --max-running N              jobs assigned or running at once; more wait in queued
  --max-queued N               jobs waiting at once; a submit past it is refused (429)
  --max-gpus N                 GPUs in use at once; more wait in queued
  --max-dataset-bytes SIZE     bytes of datasets held: 500g, 2t or a number of bytes (an upload
                               past it is refused, 413)
  --weight W                   its share of contested workers under fair share, relative to other
                               projects' (default 1; the admin's to set)`;

/** The request field each flag sets, for a 400 that names one. */
export const QUOTA_FIELDS: [prefix: string, flag: string][] = [...Object.entries(QUOTA_OF).map(([flag, key]): [string, string] => [`quotas.${key}`, `--${flag}`]), ["weight", "--weight"]];

export type QuotaFlags = { [K in keyof typeof QUOTA_FLAGS]?: string };

/** What the flags change: a number sets a quota, `null` (the flag's value `none`) removes it. */
export type QuotaChanges = { [K in QuotaKey]?: number | null };

/**
 * The quota changes the flags ask for: counts are whole numbers, the dataset size takes units,
 * and `none` removes a quota.
 *
 * @example
 * quotaChanges({ "max-running": "4", "max-gpus": "none" }) // { max_running_jobs: 4, max_gpus: null }
 */
export function quotaChanges(flags: QuotaFlags): QuotaChanges {
  const changes: QuotaChanges = {};
  for (const flag of Object.keys(QUOTA_OF) as QuotaFlag[]) {
    const raw = flags[flag];
    if (raw === undefined) continue;
    const key = QUOTA_OF[flag];
    if (raw.trim().toLowerCase() === "none") changes[key] = null;
    else changes[key] = flag === "max-dataset-bytes" ? byteSize(`--${flag}`, raw) : integer(`--${flag}`, raw, 0, Number.MAX_SAFE_INTEGER);
  }
  return changes;
}

/**
 * The quotas to send: `PATCH /v1/projects/:p` replaces them as a whole, so the changes are
 * applied to the current ones and the rest kept.
 *
 * @example
 * mergeQuotas({ max_running_jobs: 4, max_gpus: 2 }, { max_gpus: null, max_queued_jobs: 100 }) // { max_running_jobs: 4, max_queued_jobs: 100 }
 */
export function mergeQuotas(current: Quotas, changes: QuotaChanges): Quotas {
  const out: Quotas = { ...current };
  for (const [key, value] of Object.entries(changes) as [QuotaKey, number | null][]) {
    if (value === null) delete out[key];
    else out[key] = value;
  }
  return out;
}
