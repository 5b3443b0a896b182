import { describe, expect, it } from "vitest";
import { checkTimezone, CronError, dueTick, MISSED_COUNT_CAP, nextTick, parseCron } from "../../control-plane/src/workflows/cron.ts";
import { tickClock } from "../../control-plane/src/workflows/schedule-settings.ts";

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const next = (expr: string, tz: string, after: string) => iso(nextTick(parseCron(expr), tz, at(after)));

describe("parseCron", () => {
  it("reads values, lists, ranges, steps and names", () => {
    const c = parseCron("*/15 9-17/4 1,15 JAN-mar mon-FRI");
    expect([...c.minutes]).toEqual([0, 15, 30, 45]);
    expect([...c.hours]).toEqual([9, 13, 17]);
    expect([...c.days]).toEqual([1, 15]);
    expect([...c.months]).toEqual([1, 2, 3]);
    expect([...c.weekdays]).toEqual([1, 2, 3, 4, 5]);
    expect(c.fixedTime).toBe(false);
    // `a/n` runs from a to the field's end.
    expect([...parseCron("50/5 0 * * *").minutes]).toEqual([50, 55]);
  });

  it("takes 0 and 7 as Sunday, and the aliases", () => {
    expect([...parseCron("0 0 * * 7").weekdays]).toEqual([0]);
    expect([...parseCron("0 0 * * 5-7").weekdays]).toEqual([5, 6, 0]);
    expect(parseCron("@daily")).toEqual(parseCron("0 0 * * *"));
    expect(parseCron("@HOURLY")).toEqual(parseCron("0 * * * *"));
    expect(parseCron("@weekly")).toEqual(parseCron("0 0 * * 0"));
    expect(parseCron("@monthly")).toEqual(parseCron("0 0 1 * *"));
    expect(parseCron("@yearly")).toEqual(parseCron("0 0 1 1 *"));
  });

  it.each([
    ["61 * * * *", "minute field 61 is out of 0-59"],
    ["* 24 * * *", "hour field 24 is out of 0-23"],
    ["* * 0 * *", "day-of-month field 0 is out of 1-31"],
    ["* * * 13 *", "month field 13 is out of 1-12"],
    ["* * * * 8", "day-of-week field 8 is out of 0-7"],
    ["* * * foo *", 'month field "foo" is not a number or a name (jan-dec)'],
    ["*/0 * * * *", 'minute field "*/0": the step must be a whole number of at least 1'],
    ["* 5-2 * * *", 'hour field "5-2": the range runs backwards'],
    ["* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"],
    ["1,,2 * * * *", 'minute field "" is not a value, a range or a step'],
    ["0 0 30 feb *", "day-of-month field never falls in the months the month field names"],
    ["@often", '"@often" is not an alias'],
  ])("refuses %j, naming the field", (expr, message) => {
    expect(() => parseCron(expr)).toThrow(CronError);
    expect(() => parseCron(expr)).toThrow(message);
  });

  it("checks time zones", () => {
    expect(checkTimezone("Europe/Berlin")).toBe("Europe/Berlin");
    expect(() => checkTimezone("Mars/Olympus")).toThrow('"Mars/Olympus" is not an IANA time zone');
  });
});

describe("nextTick", () => {
  it("is the next matching minute strictly after", () => {
    expect(next("*/15 * * * *", "UTC", "2026-05-04T10:07:30Z")).toBe("2026-05-04T10:15:00.000Z");
    expect(next("*/15 * * * *", "UTC", "2026-05-04T10:15:00Z")).toBe("2026-05-04T10:30:00.000Z");
    expect(next("0 0 * * *", "UTC", "2026-12-31T23:59:00Z")).toBe("2027-01-01T00:00:00.000Z");
  });

  it("matches either day field when both are restricted, the restricted one otherwise", () => {
    // 2026-02-13 is a Friday; from the 14th the next is Friday the 20th, before the 13th of March.
    expect(next("0 0 13 * fri", "UTC", "2026-02-14T00:00:00Z")).toBe("2026-02-20T00:00:00.000Z");
    expect(next("0 0 13 * *", "UTC", "2026-02-14T00:00:00Z")).toBe("2026-03-13T00:00:00.000Z");
    expect(next("0 0 * * fri", "UTC", "2026-02-14T00:00:00Z")).toBe("2026-02-20T00:00:00.000Z");
    // day-of-month `*` with a weekday: only the weekday decides.
    expect(next("0 0 * 3 mon", "UTC", "2026-02-14T00:00:00Z")).toBe("2026-03-02T00:00:00.000Z");
  });

  it("skips months without the day, and finds 29 February years ahead", () => {
    expect(next("0 0 31 * *", "UTC", "2026-04-01T00:00:00Z")).toBe("2026-05-31T00:00:00.000Z");
    // 2100 is not a leap year.
    expect(next("0 0 29 2 *", "UTC", "2097-03-01T00:00:00Z")).toBe("2104-02-29T00:00:00.000Z");
  });

  it("reads wall time in the zone", () => {
    expect(next("0 9 * * *", "Europe/Berlin", "2026-01-10T12:00:00Z")).toBe("2026-01-11T08:00:00.000Z");
    expect(next("0 9 * * *", "Europe/Berlin", "2026-07-10T12:00:00Z")).toBe("2026-07-11T07:00:00.000Z");
    expect(next("30 5 * * *", "Asia/Kolkata", "2026-07-10T12:00:00Z")).toBe("2026-07-11T00:00:00.000Z");
  });

  // New York: 2026-03-08 02:00 EST jumps to 03:00 EDT; 2026-11-01 02:00 EDT falls back to 01:00 EST.
  it("runs a fixed time in a skipped hour once, when the hour ends", () => {
    expect(next("30 2 * * *", "America/New_York", "2026-03-07T17:00:00Z")).toBe("2026-03-08T07:00:00.000Z");
    expect(next("30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z")).toBe("2026-03-09T06:30:00.000Z");
  });

  it("lets a wildcard expression follow real time through a skipped hour", () => {
    expect(next("*/30 * * * *", "America/New_York", "2026-03-08T06:45:00Z")).toBe("2026-03-08T07:00:00.000Z");
    expect(next("*/30 * * * *", "America/New_York", "2026-03-08T07:00:00Z")).toBe("2026-03-08T07:30:00.000Z");
  });

  it("runs a fixed time in a repeated hour only the first time", () => {
    const first = next("30 1 * * *", "America/New_York", "2026-10-31T17:00:00Z");
    expect(first).toBe("2026-11-01T05:30:00.000Z");
    expect(next("30 1 * * *", "America/New_York", first!)).toBe("2026-11-02T06:30:00.000Z");
  });

  it("ticks a wildcard expression through both passes of a repeated hour", () => {
    expect(next("30 * * * *", "America/New_York", "2026-11-01T05:30:00Z")).toBe("2026-11-01T06:30:00.000Z");
    expect(next("30 * * * *", "America/New_York", "2026-11-01T06:30:00Z")).toBe("2026-11-01T07:30:00.000Z");
  });
});

describe("dueTick", () => {
  const everyMinute = parseCron("* * * * *");
  const due = at("2026-05-04T10:00:00Z");

  it("runs the due tick when it is on time", () => {
    expect(dueTick(everyMinute, "UTC", due, due + 20_000)).toEqual({ tickAt: due, missed: 0 });
  });

  it("runs only the latest of missed ticks, and counts the rest", () => {
    expect(dueTick(everyMinute, "UTC", due, due + 5 * 60_000 + 30_000)).toEqual({ tickAt: due + 5 * 60_000, missed: 5 });
  });

  it("finds the latest tick of a long outage without counting every one", () => {
    const now = due + 3 * 86_400_000 + 42_000;
    expect(dueTick(everyMinute, "UTC", due, now)).toEqual({ tickAt: now - 42_000, missed: MISSED_COUNT_CAP });
    const nine = parseCron("*/5 9 * * *");
    expect(dueTick(nine, "UTC", at("2026-05-04T09:00:00Z"), at("2026-05-20T12:00:00Z")).tickAt).toBe(at("2026-05-20T09:55:00Z"));
  });
});

describe("tickClock (SCHEDULE_MINUTE_S)", () => {
  it("is real time at 60", () => {
    const clock = tickClock(60);
    expect(clock.next(parseCron("*/15 * * * *"), "UTC", at("2026-05-04T10:07:30Z"))).toBe(at("2026-05-04T10:15:00Z"));
  });

  it("makes a cron minute one second at 1", () => {
    const clock = tickClock(1);
    const cron = parseCron("* * * * *");
    const now = at("2026-05-04T10:07:30.250Z");
    expect(clock.next(cron, "UTC", now)).toBe(at("2026-05-04T10:07:31Z"));
    expect(clock.next(cron, "UTC", at("2026-05-04T10:07:31Z"))).toBe(at("2026-05-04T10:07:32Z"));
    expect(clock.due(cron, "UTC", at("2026-05-04T10:07:31Z"), at("2026-05-04T10:07:34.5Z"))).toEqual({ tickAt: at("2026-05-04T10:07:34Z"), missed: 3 });
  });
});
