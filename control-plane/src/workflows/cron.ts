/*
 * Five-field cron expressions (minute hour day-of-month month day-of-week) with Vixie cron's
 * semantics, and the next tick of one in an IANA time zone. Pure: no I/O, no clock.
 *
 * Time zones: a tick is a wall-clock minute of the zone that matches the expression. Around a
 * daylight-saving change, as Vixie cron does: an expression whose minute and hour fields are
 * both fixed (no leading `*`, e.g. `30 2 * * *`) runs once at the end of a skipped hour for
 * each of its wall times that fell in it, and only at the first of a repeated hour's two
 * occurrences; any other expression (`*\/15 * * * *`, `5 * * * *`) just follows real time,
 * so it has no ticks in a skipped hour and ticks through both passes of a repeated one.
 */

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** A field's name, its bounds and the names it accepts (index + offset = value). */
const FIELDS = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day-of-month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], offset: 1 },
  // 7 is Sunday too; it is folded to 0 after parsing.
  { name: "day-of-week", min: 0, max: 7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"], offset: 0 },
] as const;

const ALIASES: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

/** The longest month each month can be (February: a leap year's 29). */
const MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** A parsed expression: the values each field allows. */
export interface Cron {
  minutes: ReadonlySet<number>;
  hours: ReadonlySet<number>;
  days: ReadonlySet<number>;
  months: ReadonlySet<number>;
  /** 0 (Sunday) to 6. */
  weekdays: ReadonlySet<number>;
  /** The field was `*` (or `*\/1`): it restricts nothing, which changes how the two day fields combine. */
  daysStar: boolean;
  weekdaysStar: boolean;
  /** Minute and hour are both fixed: Vixie's rule for daylight-saving changes (see the module comment). */
  fixedTime: boolean;
}

/** A cron expression or a time zone that cannot be used; the message names the part at fault and why (the API prefixes the request field). */
export class CronError extends Error {}

function parseValue(field: (typeof FIELDS)[number], raw: string): number {
  const names: readonly string[] = "names" in field ? field.names : [];
  const named = names.indexOf(raw.toLowerCase());
  if (named >= 0) return named + ("offset" in field ? field.offset : 0);
  if (!/^\d+$/.test(raw)) throw new CronError(`${field.name} field "${raw}" is not a number${names.length ? ` or a name (${names[0]}-${names.at(-1)})` : ""}`);
  const n = Number(raw);
  if (n < field.min || n > field.max) throw new CronError(`${field.name} field ${n} is out of ${field.min}-${field.max}`);
  return n;
}

/** One field: `*`, a value, a range `a-b`, each optionally `/step`, comma-separated. */
function parseField(field: (typeof FIELDS)[number], text: string): { values: Set<number>; star: boolean } {
  const values = new Set<number>();
  let star = false;
  for (const part of text.split(",")) {
    const [range, stepText, extra] = part.split("/");
    if (extra !== undefined || range === undefined || range === "") throw new CronError(`${field.name} field "${part}" is not a value, a range or a step`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) < 1) throw new CronError(`${field.name} field "${part}": the step must be a whole number of at least 1`);
      step = Number(stepText);
    }
    let lo: number;
    let hi: number;
    if (range === "*") {
      [lo, hi] = [field.min, field.max];
      if (step === 1) star = true;
    } else {
      const [a, b, more] = range.split("-");
      if (more !== undefined || a === undefined || a === "" || b === "") throw new CronError(`${field.name} field "${part}" is not a value or a range a-b`);
      lo = parseValue(field, a);
      // `a/n` means from a to the end, as Vixie cron reads it.
      hi = b !== undefined ? parseValue(field, b) : stepText !== undefined ? field.max : lo;
      if (hi < lo) throw new CronError(`${field.name} field "${part}": the range runs backwards`);
    }
    for (let v = lo; v <= hi; v += step) values.add(v);
  }
  return { values, star };
}

/**
 * Parses a five-field expression or an alias (@hourly, @daily, @weekly, @monthly, @yearly).
 * Throws CronError naming the field at fault.
 *
 * @example
 * parseCron("*\/15 9-17 * * mon-fri")
 */
export function parseCron(expression: string): Cron {
  const text = expression.trim();
  const expanded = text.startsWith("@") ? ALIASES[text.toLowerCase()] : text;
  if (expanded === undefined) throw new CronError(`"${text}" is not an alias (${Object.keys(ALIASES).join(", ")})`);
  const parts = expanded.split(/\s+/);
  if (parts.length !== 5) throw new CronError(`expected 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}`);
  const [minute, hour, dom, month, dow] = FIELDS.map((f, i) => parseField(f, parts[i]!)) as [ReturnType<typeof parseField>, ReturnType<typeof parseField>, ReturnType<typeof parseField>, ReturnType<typeof parseField>, ReturnType<typeof parseField>];
  const weekdays = new Set([...dow.values].map((d) => d % 7));
  // Day-of-week `*` leaves the day to day-of-month alone, which must then fall in some month.
  if (dow.star && !dom.star && ![...month.values].some((m) => [...dom.values].some((d) => d <= MONTH_DAYS[m - 1]!))) {
    throw new CronError(`day-of-month field never falls in the months the month field names`);
  }
  return {
    minutes: minute.values,
    hours: hour.values,
    days: dom.values,
    months: month.values,
    weekdays,
    daysStar: dom.star,
    weekdaysStar: dow.star,
    fixedTime: !parts[0]!.startsWith("*") && !parts[1]!.startsWith("*"),
  };
}

/** Vixie: with both day fields restricted a day matches either; otherwise the restricted one decides. */
function dayMatches(cron: Cron, date: Date): boolean {
  const dom = cron.days.has(date.getUTCDate());
  const dow = cron.weekdays.has(date.getUTCDay());
  if (cron.daysStar || cron.weekdaysStar) return dom && dow;
  return dom || dow;
}

const firstAtLeast = (set: ReadonlySet<number>, from: number): number | undefined => {
  let best: number | undefined;
  for (const v of set) if (v >= from && (best === undefined || v < best)) best = v;
  return best;
};

/** Wall-clock searches give up this far ahead: every valid expression matches within 8 years (29 February). */
const SEARCH_YEARS = 9;

/**
 * The first wall-clock minute at or after `wall` that matches, as ms whose UTC fields are the
 * wall-clock fields; null if none within SEARCH_YEARS. Skips whole months, days and hours.
 */
export function nextWallMatch(cron: Cron, wall: number): number | null {
  const d = new Date(Math.ceil(wall / MINUTE_MS) * MINUTE_MS);
  const limit = d.getUTCFullYear() + SEARCH_YEARS;
  while (d.getUTCFullYear() <= limit) {
    const month = d.getUTCMonth() + 1;
    if (!cron.months.has(month)) {
      const next = firstAtLeast(cron.months, month + 1);
      d.setUTCFullYear(next === undefined ? d.getUTCFullYear() + 1 : d.getUTCFullYear(), (next ?? firstAtLeast(cron.months, 1)!) - 1, 1);
      d.setUTCHours(0, 0, 0, 0);
      continue;
    }
    if (!dayMatches(cron, d)) {
      d.setUTCDate(d.getUTCDate() + 1);
      d.setUTCHours(0, 0, 0, 0);
      continue;
    }
    const hour = firstAtLeast(cron.hours, d.getUTCHours());
    if (hour === undefined) {
      d.setUTCDate(d.getUTCDate() + 1);
      d.setUTCHours(0, 0, 0, 0);
      continue;
    }
    if (hour !== d.getUTCHours()) d.setUTCHours(hour, 0, 0, 0);
    const minute = firstAtLeast(cron.minutes, d.getUTCMinutes());
    if (minute === undefined) {
      d.setUTCHours(d.getUTCHours() + 1, 0, 0, 0);
      continue;
    }
    d.setUTCMinutes(minute, 0, 0);
    return d.getTime();
  }
  return null;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Checks an IANA zone name and returns it as Intl spells it; throws CronError if unknown. */
export function checkTimezone(timezone: string): string {
  return formatterOf(timezone).resolvedOptions().timeZone;
}

function formatterOf(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat("en-US", { timeZone: timezone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" });
    } catch {
      throw new CronError(`"${timezone}" is not an IANA time zone (such as UTC or Europe/Berlin)`);
    }
    formatters.set(timezone, f);
  }
  return f;
}

/** The zone's offset from UTC at an instant, in ms (wall = instant + offset). */
export function offsetAt(timezone: string, at: number): number {
  const p: Record<string, number> = {};
  for (const part of formatterOf(timezone).formatToParts(at)) if (part.type !== "literal" && part.type !== "era") p[part.type] = Number(part.value);
  const wall = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
  return wall - Math.floor(at / 1000) * 1000;
}

/** Offsets are sampled this often when looking for a change: shorter than any two changes are apart. */
const PROBE_MS = 7 * DAY_MS;

/** The first minute in (from, to] at which the offset differs from the one at `from`; null if none. */
function nextOffsetChange(timezone: string, from: number, to: number): number | null {
  const base = offsetAt(timezone, from);
  let lo = from;
  for (let probe = from; probe < to; ) {
    const hi = Math.min(probe + PROBE_MS, to);
    if (offsetAt(timezone, hi) !== base) {
      // The change lies in (lo, hi]: halve to the minute.
      let a = lo;
      let b = hi;
      while (b - a > MINUTE_MS) {
        const mid = a + (Math.floor((b - a) / 2 / MINUTE_MS) * MINUTE_MS || MINUTE_MS);
        if (offsetAt(timezone, mid) !== base) b = mid;
        else a = mid;
      }
      return b;
    }
    lo = probe = hi;
  }
  return null;
}

/**
 * The next tick strictly after `afterMs` (ms since the epoch), in `timezone`; null if the
 * expression has none within SEARCH_YEARS. Works one stretch of constant UTC offset at a
 * time, skipping through the calendar a field at a time.
 *
 * @example
 * nextTick(parseCron("0 9 * * mon"), "Europe/Berlin", Date.now())
 */
export function nextTick(cron: Cron, timezone: string, afterMs: number): number | null {
  let t = Math.floor(afterMs / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  // Each pass either answers or moves past one offset change; a zone changes a few times a year.
  for (let pass = 0; pass < 4 * SEARCH_YEARS; pass++) {
    const offset = offsetAt(timezone, t);
    const wall = nextWallMatch(cron, t + offset);
    if (wall === null) return null;
    const candidate = wall - offset;
    const change = nextOffsetChange(timezone, t, candidate);
    if (change === null) return candidate;
    const after = offsetAt(timezone, change);
    if (cron.fixedTime && after > offset) {
      // Wall times from change+offset to change+after never happen: run the ones that match at the change.
      const skipped = nextWallMatch(cron, change + offset);
      if (skipped !== null && skipped < change + after) return change;
    }
    // A repeated stretch of wall time: a fixed-time expression ran there on the first pass.
    t = cron.fixedTime && after < offset ? change + (offset - after) : change;
  }
  return null;
}

/** How many missed ticks are counted before the count is given as "more than". */
export const MISSED_COUNT_CAP = 1000;

/** Which tick a late wake-up runs: the latest one due, and how many earlier ones it stands for. */
export interface DueTick {
  tickAt: number;
  /** Ticks between the first due one and `tickAt` that will never run (capped at MISSED_COUNT_CAP). */
  missed: number;
}

/**
 * The tick to run when a schedule due at `dueAt` is looked at, at `now` (≥ dueAt): the
 * latest tick at or before now. Ticks missed while nothing ran (an outage, a paused alarm)
 * are not caught up, one job stands for them all.
 */
export function dueTick(cron: Cron, timezone: string, dueAt: number, now: number): DueTick {
  let tickAt = dueAt;
  let missed = 0;
  for (let next = nextTick(cron, timezone, tickAt); next !== null && next <= now; next = nextTick(cron, timezone, tickAt)) {
    if (missed === MISSED_COUNT_CAP) return { tickAt: latestTickBy(cron, timezone, tickAt, now), missed };
    tickAt = next;
    missed++;
  }
  return { tickAt, missed };
}

/** The latest tick in (floor, now], found by widening a window back from now: for long outages of frequent schedules. */
function latestTickBy(cron: Cron, timezone: string, floor: number, now: number): number {
  for (let span = MINUTE_MS; ; span *= 2) {
    const from = Math.max(floor, now - span);
    let tick = nextTick(cron, timezone, from);
    if (tick !== null && tick <= now) {
      for (let next = nextTick(cron, timezone, tick); next !== null && next <= now; next = nextTick(cron, timezone, tick)) tick = next;
      return tick;
    }
    if (from === floor) return floor;
  }
}
