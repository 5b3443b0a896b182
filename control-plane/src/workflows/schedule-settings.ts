import { z } from "zod";
import { dueTick, nextTick, type Cron, type DueTick } from "./cron.ts";

/** The schedule vars of wrangler.toml, each with its default (docs/schedules.md). */
const ScheduleSettingsSchema = z.object({
  /**
   * The length, in real seconds, of one cron minute: 60 in production. A test clock: at 1,
   * `* * * * *` fires every second. Schedules run on virtual time, real ms × 60 /
   * SCHEDULE_MINUTE_S, so every tick (and next_run_at) is the virtual tick scaled back.
   */
  SCHEDULE_MINUTE_S: z.coerce.number().positive().max(60).default(60),
  /** Due schedules one alarm handles; more are left for an alarm right after. */
  SCHEDULE_BATCH: z.coerce.number().int().min(1).max(500).default(50),
  /** Schedules a project may have. */
  SCHEDULE_MAX_PER_PROJECT: z.coerce.number().int().min(1).default(100),
});
export type ScheduleSettings = z.infer<typeof ScheduleSettingsSchema>;

const cache = new WeakMap<object, ScheduleSettings>();

/** Parses the schedule settings once per env object; a bad var is a deploy error, so it throws. */
export function scheduleSettingsOf(env: Env): ScheduleSettings {
  let s = cache.get(env);
  if (!s) {
    s = ScheduleSettingsSchema.parse(env);
    cache.set(env, s);
  }
  return s;
}

/**
 * Real time and cron time under SCHEDULE_MINUTE_S. Rounding keeps a tick's real time strictly
 * after the real time it was asked after, so a fired tick is never fired again.
 */
export interface TickClock {
  /** The next tick strictly after a real instant, as a real instant; null if the expression has none. */
  next(cron: Cron, timezone: string, afterMs: number): number | null;
  /** dueTick (cron.ts) in real time: the latest tick of a schedule due at `dueAt`, looked at at `now`. */
  due(cron: Cron, timezone: string, dueAt: number, now: number): DueTick;
}

export function tickClock(minuteS: number): TickClock {
  const scale = 60 / minuteS;
  const toVirtual = (ms: number) => (scale === 1 ? ms : Math.floor(ms * scale));
  const toReal = (ms: number) => (scale === 1 ? ms : Math.ceil(ms / scale));
  return {
    due(cron, timezone, dueAt, now) {
      const d = dueTick(cron, timezone, toVirtual(dueAt), toVirtual(now));
      // The stored tick itself, not a round trip through virtual time, so its run keeps its key.
      return { tickAt: d.missed === 0 ? dueAt : toReal(d.tickAt), missed: d.missed };
    },
    next(cron, timezone, afterMs) {
      const tick = nextTick(cron, timezone, toVirtual(afterMs));
      return tick === null ? null : toReal(tick);
    },
  };
}
