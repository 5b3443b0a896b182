import { JobRequest } from "../../../protocol/index.ts";
import { standingIn } from "../auth/access.ts";
import { allows } from "../auth/roles.ts";
import { findByIdempotencyKey } from "../db/jobs.ts";
import { advanceSchedule, getRun, insertRun, submitterOf, unfinishedJobOf, type ScheduleRow, type ScheduleRunRow } from "../db/schedules.ts";
import { AppError } from "../errors.ts";
import { MISSED_COUNT_CAP, parseCron } from "./cron.ts";
import type { TickClock } from "./schedule-settings.ts";
import { submitJob, type SubmitContext } from "./submit.ts";

/** The tick a due schedule runs now, what it stands for, and when the schedule is due next. */
export interface TickPlan {
  tickAt: number;
  /** Earlier ticks, missed while nothing ran, that this one stands for. */
  missed: number;
  nextRunAt: number | null;
}

/**
 * Decides a due schedule's tick: only the latest tick at or before `now` runs, however many
 * were missed (an outage, a long D1 failure); the next is the first tick after now.
 */
export function planTick(s: Pick<ScheduleRow, "cron" | "timezone">, dueAt: number, clock: TickClock, now: number): TickPlan {
  const cron = parseCron(s.cron);
  const { tickAt, missed } = clock.due(cron, s.timezone, dueAt, now);
  return { tickAt, missed, nextRunAt: clock.next(cron, s.timezone, Math.max(tickAt, now)) };
}

/** The key a tick's job is submitted under, with the schedule's id as its owner: one job per tick. */
export const tickKey = (tickAt: number) => `tick:${tickAt}`;

const missedNote = (missed: number) =>
  missed === 0 ? null : `${missed}${missed >= MISSED_COUNT_CAP ? "+" : ""} earlier tick${missed === 1 ? " was" : "s were"} missed while the schedule could not run; only this, the latest, ran`;

const joined = (...parts: (string | null)[]) => parts.filter(Boolean).join("; ") || null;

/**
 * Runs a due schedule's tick at most once, however often it is called for the same row: the
 * tick's job is submitted under the schedule's key for it (a second submit finds the first
 * job), its run is recorded once (the tick is the run's key), and the schedule moves on only
 * from the tick it was read at. Errors other than a refused submit (D1, the coordinator)
 * propagate, leaving the schedule due, so the tick is tried again, never lost or doubled.
 */
export async function fireSchedule(c: SubmitContext, clock: TickClock, s: ScheduleRow, now: number): Promise<TickPlan> {
  const dueAt = s.nextRunAt!;
  const plan = planTick(s, dueAt, clock, now);
  if (plan.tickAt !== dueAt) {
    // The due tick's job from an earlier try whose record was lost: it ran, so it is recorded, not counted as missed.
    const lost = await findByIdempotencyKey(c.db, s.id, tickKey(dueAt));
    if (lost) {
      await insertRun(c.db, { scheduleId: s.id, tickAt: dueAt, jobId: lost.id, outcome: "submitted", message: null, at: Date.now() });
      plan.missed--;
    }
  }
  if (!(await getRun(c.db, s.id, plan.tickAt))) await insertRun(c.db, await runOf(c, s, plan));
  await advanceSchedule(c.db, s.id, dueAt, { nextRunAt: plan.nextRunAt, lastRunAt: plan.tickAt });
  return plan;
}

async function runOf(c: SubmitContext, s: ScheduleRow, plan: TickPlan): Promise<ScheduleRunRow> {
  const note = missedNote(plan.missed);
  const run = (outcome: ScheduleRunRow["outcome"], jobId: string | null, message: string | null): ScheduleRunRow => ({ scheduleId: s.id, tickAt: plan.tickAt, jobId, outcome, message: joined(message, note), at: Date.now() });
  const refused = (why: string) => run("refused", null, why);
  const key = tickKey(plan.tickAt);
  // An earlier try submitted this tick's job and failed before recording it.
  const earlier = await findByIdempotencyKey(c.db, s.id, key);
  if (earlier) return run("submitted", earlier.id, null);
  if (s.overlap === "skip") {
    const busy = await unfinishedJobOf(c.db, s.id);
    if (busy) return run("skipped", null, `job ${busy} of this schedule has not finished (overlap: skip)`);
  }
  const principal = await submitterOf(c.db, s);
  if (!principal) return refused(`its submitter ${s.submittedBy} no longer exists`);
  if (!allows(standingIn(principal, s.project), "member")) return refused(`its submitter ${s.submittedBy} is no longer a member (or owner) of project ${s.project}`);
  const spec = JobRequest.safeParse(s.job);
  if (!spec.success) return refused(`its job no longer validates: ${spec.error.issues[0]?.path.join(".") || "job"}: ${spec.error.issues[0]?.message}`);
  try {
    const { job } = await submitJob(c, principal, spec.data, { createdBy: s.id, idempotencyKey: key, scheduleId: s.id });
    return run("submitted", job.id, null);
  } catch (err) {
    // The project said no (a quota, a secret gone, the pool's policy): this tick will not run. Anything else is tried again.
    if (err instanceof AppError && err.status < 500) return refused(err.message);
    throw err;
  }
}
