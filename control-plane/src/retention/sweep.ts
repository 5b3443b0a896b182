import { createDb, type Db } from "../db/client.ts";
import type { Bindings } from "../env.ts";
import { settingsOf } from "../settings.ts";
import type { Retention } from "../db/schema.ts";
import { cutoffsOf, effectiveRetention, retentionDefaults, type Cutoffs, type RetentionDays } from "./policy.ts";
import { ANY_LIVE_NEED, LIVE_NEEDS, purgeJobs, type PurgeWhat } from "./purge.ts";

/** What one sweep deleted: jobs (with everything they left), and the artifacts and logs of jobs kept. */
export interface SweepResult {
  jobs: number;
  artifacts: number;
  logs: number;
  objects: number;
}

const TERMINAL = "('completed', 'failed', 'canceled')";
/**
 * A stage's due jobs, each project against its own cutoff (`?1`: `[[project, before], …]`), by
 * the partial index that holds only jobs the stage has not done yet: each done job leaves it,
 * so a run's LIMIT always reaches new ones. Jobs something unfinished needs are skipped for
 * artifacts and deletion (not counted against the batch); logs go regardless.
 */
const DUE: Record<PurgeWhat, string> = {
  job: `SELECT j.id FROM json_each(?1) c JOIN jobs j INDEXED BY jobs_finished ON j.project = c.value ->> 0 AND j.finished_at < c.value ->> 1 WHERE j.finished_at IS NOT NULL AND j.status IN ${TERMINAL} AND NOT ${ANY_LIVE_NEED} LIMIT ?2`,
  artifacts: `SELECT j.id FROM json_each(?1) c JOIN jobs j INDEXED BY jobs_artifacts_due ON j.project = c.value ->> 0 AND j.finished_at < c.value ->> 1 WHERE j.finished_at IS NOT NULL AND j.artifacts_purged_at IS NULL AND j.status IN ${TERMINAL} AND NOT (${LIVE_NEEDS.dependents} OR ${LIVE_NEEDS.readers} OR ${LIVE_NEEDS.attempts}) LIMIT ?2`,
  logs: `SELECT j.id FROM json_each(?1) c JOIN jobs j INDEXED BY jobs_logs_due ON j.project = c.value ->> 0 AND j.finished_at < c.value ->> 1 WHERE j.finished_at IS NOT NULL AND j.logs_purged_at IS NULL AND j.status IN ${TERMINAL} AND NOT ${LIVE_NEEDS.attempts} LIMIT ?2`,
};
const STAGE: Record<PurgeWhat, keyof Cutoffs> = { job: "jobs", artifacts: "artifacts", logs: "logs" };

/** Each project's cutoffs, from its own retention and the defaults. */
async function projectCutoffs(db: Db, defaults: RetentionDays, now: number): Promise<[string, Cutoffs][]> {
  const rows = await db.$client.prepare("SELECT name, retention FROM projects").raw<[string, string]>();
  return rows.map(([name, own]) => [name, cutoffsOf(effectiveRetention(defaults, JSON.parse(own) as Retention), now)]);
}

/**
 * Deletes what retention lets go of, at most RETENTION_SWEEP_BATCH jobs' worth a run (whole
 * jobs first, then artifacts, then logs) so one run stays within a Worker's limits; what it
 * leaves, the next run takes. Run from the Cron Trigger.
 */
export async function sweepRetention(env: Bindings, now = Date.now()): Promise<SweepResult> {
  const settings = settingsOf(env);
  const db = createDb(env.DB);
  const cutoffs = await projectCutoffs(db, retentionDefaults(settings), now);
  const result: SweepResult = { jobs: 0, artifacts: 0, logs: 0, objects: 0 };
  let budget = settings.RETENTION_SWEEP_BATCH;
  for (const what of ["job", "artifacts", "logs"] as const) {
    const before = cutoffs.flatMap(([project, c]) => (c[STAGE[what]] === null ? [] : [[project, c[STAGE[what]]]]));
    if (budget === 0 || before.length === 0) continue;
    const ids = (await env.DB.prepare(DUE[what]).bind(JSON.stringify(before), budget).raw<[string]>()).map((r) => r[0]);
    result.objects += await purgeJobs({ db, bucket: env.BUCKET }, ids, what, now);
    result[what === "job" ? "jobs" : what] = ids.length;
    budget -= ids.length;
  }
  return result;
}
