import { DurableObject } from "cloudflare:workers";
import { Faults, faultsEnabled, faultyD1, type FaultPlan } from "../coordinator/faults.ts";
import { createDb, type Db } from "../db/client.ts";
import { dueSchedules, earliestNextRun } from "../db/schedules.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { scheduleSettingsOf, tickClock } from "./schedule-settings.ts";
import { fireSchedule } from "./schedule-tick.ts";

/** After a round in which a schedule could not be fired (D1 down), the next comes this much later. */
const AFTER_FAILED_ROUND_MS = 5_000;

/** The alarm is never further away than this, so a lost poke delays a new schedule by at most this. */
const BACKSTOP_MS = 600_000;

/**
 * Fires schedules. One for the grid (`scheduleClockOf`): it holds one alarm, at the earliest
 * next_run_at of the unpaused schedules; a route that changes a schedule pokes it. Each alarm
 * fires up to SCHEDULE_BATCH due schedules (see fireSchedule: at most once per tick, across
 * restarts and retries), then arms itself again. The alarm never throws.
 */
export class ScheduleClock extends DurableObject<Bindings> {
  private readonly faults: Faults | null;
  private readonly db: Db;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.faults = faultsEnabled(env) ? new Faults() : null;
    this.db = createDb(this.faults ? faultyD1(env.DB, this.faults) : env.DB);
  }

  /** A schedule changed: a round now, which arms the alarm for whatever is due next. */
  async poke(): Promise<void> {
    const now = Date.now();
    const at = await this.ctx.storage.getAlarm();
    if (at === null || at > now) await this.ctx.storage.setAlarm(now);
  }

  /** Test-only (GRIDX_FAULTS=on): fails the clock's next D1 calls, or throws its instance away as a restart would. */
  async injectFaults(fault: { d1?: FaultPlan; reset?: boolean }): Promise<{ injected: number }> {
    if (!this.faults) throw new Error("fault injection is off (GRIDX_FAULTS)");
    if (fault.d1) this.faults.set(fault.d1);
    if (fault.reset) setTimeout(() => this.ctx.abort("reset by fault injection"), 0);
    return { injected: this.faults.injected };
  }

  override async alarm(): Promise<void> {
    let next: number;
    try {
      next = await this.round();
    } catch (err) {
      console.error(`ScheduleClock: round failed; trying again in ${AFTER_FAILED_ROUND_MS} ms`, errorText(err));
      next = Date.now() + AFTER_FAILED_ROUND_MS;
    }
    try {
      await this.ctx.storage.setAlarm(next);
    } catch (err) {
      console.error("ScheduleClock: could not arm the alarm", errorText(err));
    }
  }

  /** Fires the due schedules; resolves with when the next round is due. */
  private async round(): Promise<number> {
    const settings = scheduleSettingsOf(this.env);
    const clock = tickClock(settings.SCHEDULE_MINUTE_S);
    const now = Date.now();
    const due = await dueSchedules(this.db, now, settings.SCHEDULE_BATCH);
    const submit = { db: this.db, env: this.env, waitUntil: (p: Promise<unknown>) => this.ctx.waitUntil(p) };
    let failed = 0;
    // One at a time: a batch is small, and one schedule's failure must not hold back the rest.
    for (const schedule of due) {
      try {
        await fireSchedule(submit, clock, schedule, now);
      } catch (err) {
        failed++;
        console.error(`ScheduleClock: schedule ${schedule.id} could not fire; it stays due`, errorText(err));
      }
    }
    const after = Date.now();
    // Within the same cron minute, so the retry runs the tick that failed (on the test clock too).
    if (failed > 0) return after + Math.min(AFTER_FAILED_ROUND_MS, settings.SCHEDULE_MINUTE_S * 500);
    if (due.length === settings.SCHEDULE_BATCH) return after;
    const earliest = await earliestNextRun(this.db);
    return Math.max(after, Math.min(earliest ?? Infinity, after + BACKSTOP_MS));
  }
}

/** The grid's one schedule clock. */
export const scheduleClockOf = (env: Bindings) => env.SCHEDULE_CLOCK.getByName("schedules");

/** Tells the clock a schedule changed; a lost poke is made good by the clock's backstop alarm (and the cron trigger's poke). */
export const pokeScheduleClock = (env: Bindings): Promise<void> =>
  scheduleClockOf(env)
    .poke()
    .catch((err: unknown) => console.error("poking the schedule clock failed", errorText(err)));
