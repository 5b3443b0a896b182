import { describe, expect, it } from "vitest";
import { addressKey, ruleForSecret } from "../../control-plane/src/limits/gate.ts";
import { retryAfterSeconds, take, type Bucket, type Rule } from "../../control-plane/src/limits/token-bucket.ts";
import { settingsOf } from "../../control-plane/src/settings.ts";

const rule: Rule = { perSecond: 2, burst: 3 };

/** Takes `n` times at one instant; the verdicts' `allowed`, and the bucket after. */
function takeN(bucket: Bucket | undefined, n: number, now: number) {
  const allowed: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const v = take(bucket, rule, now);
    allowed.push(v.allowed);
    bucket = v.bucket;
  }
  return { allowed, bucket: bucket! };
}

describe("the token bucket", () => {
  it("starts full: a burst goes through at once, the request after it does not", () => {
    const { allowed } = takeN(undefined, 4, 0);
    expect(allowed).toEqual([true, true, true, false]);
  });

  it("says when the next request would go through: the time to refill one token", () => {
    const { bucket } = takeN(undefined, 3, 0);
    expect(take(bucket, rule, 0)).toMatchObject({ allowed: false, retryAfterMs: 500 });
    expect(take(bucket, rule, 250)).toMatchObject({ allowed: false, retryAfterMs: 250 });
    expect(take(bucket, rule, 500).allowed).toBe(true);
  });

  it("refuses without spending: waiting the time it names is enough", () => {
    let { bucket } = takeN(undefined, 3, 0);
    for (let i = 0; i < 10; i++) bucket = take(bucket, rule, 100).bucket;
    expect(take(bucket, rule, 500).allowed).toBe(true);
  });

  it("refills at its rate and never beyond its burst", () => {
    const { bucket } = takeN(undefined, 3, 0);
    expect(takeN(bucket, 3, 1000).allowed).toEqual([true, true, false]);
    expect(takeN(bucket, 4, 60_000).allowed).toEqual([true, true, true, false]);
  });

  it("answers 0 ms while a token is left after this request", () => {
    expect(take(undefined, rule, 0).retryAfterMs).toBe(0);
  });

  it("can be looked at without spending a token", () => {
    const { bucket } = takeN(undefined, 2, 0);
    const look = take(bucket, rule, 0, false);
    expect(look).toMatchObject({ allowed: true, retryAfterMs: 0 });
    expect(takeN(look.bucket, 2, 0).allowed).toEqual([true, false]);
  });

  it("refills nothing when the clock steps back, and counts on from there", () => {
    const { bucket } = takeN(undefined, 3, 10_000);
    const back = take(bucket, rule, 5_000);
    expect(back.allowed).toBe(false);
    expect(take(back.bucket, rule, 5_500).allowed).toBe(true);
  });

  it("keeps slow rates exact: 30 a minute is one every 2 s", () => {
    const perMinute: Rule = { perSecond: 30 / 60, burst: 30 };
    let bucket: Bucket | undefined;
    for (let i = 0; i < 30; i++) bucket = take(bucket, perMinute, 0).bucket;
    expect(take(bucket, perMinute, 0)).toMatchObject({ allowed: false, retryAfterMs: 2000 });
  });
});

describe("Retry-After", () => {
  it("is whole seconds, rounded up, and at least 1", () => {
    expect([0, 1, 999, 1000, 1001, 2500].map(retryAfterSeconds)).toEqual([1, 1, 1, 1, 2, 3]);
  });
});

describe("the address a failure is counted under", () => {
  it("is an IPv4 address itself, also when written inside IPv6", () => {
    expect(addressKey("192.0.2.7")).toBe("192.0.2.7");
    expect(addressKey("::ffff:192.0.2.7")).toBe("192.0.2.7");
  });

  it("is an IPv6 address's /64, however the address is written", () => {
    const key = "2001:db8:0:1::/64";
    expect(addressKey("2001:db8:0:1::1")).toBe(key);
    expect(addressKey("2001:0DB8:0000:0001:ffff:ffff:ffff:fffe")).toBe(key);
    expect(addressKey("2001:db8::1:0:0:0:9")).toBe(key);
    expect(addressKey("2001:db8:0:2::1")).not.toBe(key);
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
  });
});

describe("the rule a secret is limited by", () => {
  const s = settingsOf({} as Env);

  it("is told by the secret's prefix, with these defaults", () => {
    expect(ruleForSecret("gxu_x", s)).toEqual({ perSecond: 20, burst: 100, setting: "RATE_LIMIT_RPS" });
    expect(ruleForSecret("gxs_x", s)).toEqual({ perSecond: 20, burst: 100, setting: "RATE_LIMIT_RPS" });
    expect(ruleForSecret("gxa_x", s)).toEqual({ perSecond: 200, burst: 2000, setting: "AGENT_RATE_LIMIT_RPS" });
    expect(ruleForSecret("the-admin-token", s)).toEqual({ perSecond: 500, burst: 5000, setting: "ADMIN_RATE_LIMIT_RPS" });
    expect(s.AUTH_FAILURES_PER_MIN).toBe(30);
  });
});
