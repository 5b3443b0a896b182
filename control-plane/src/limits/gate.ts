import { PREFIX, resolveSecret, sha256Hex, type Resolved } from "../auth/tokens.ts";
import { createDb } from "../db/client.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { settingsOf, type Settings } from "../settings.ts";
import type { Answer } from "./rate-limiter.ts";
import { retryAfterSeconds, type Rule } from "./token-bucket.ts";

/** A request turned away by a rate limit: the message names the limit, `limit` is its value. */
export interface Refusal {
  message: string;
  limit: number;
  retryAfterS: number;
}

/** A limiter that answers no sooner than this is skipped: the request goes through. */
export const LIMITER_TIMEOUT_MS = 1000;
/** How many addresses this isolate remembers the standing of (below), the oldest forgotten first. */
const ADDRESSES_CACHED = 10_000;
/**
 * An address the limiter found clear is not asked about again in this isolate for this long.
 * A failure from it is still counted at once, and its answer blocks the address here at once.
 */
export const ADDRESS_CLEAR_MS = 1000;

type Limited = Rule & { setting: string };

/**
 * The rate rule for a secret, told by its prefix before any lookup, so the limiter is asked
 * alongside it: agent tokens', API tokens' and dashboard sessions' (an admin's session too: a
 * person at a browser), and the admin token's (the only secret with none of the prefixes that
 * resolves).
 */
export function ruleForSecret(bearer: string, s: Settings): Limited {
  if (bearer.startsWith(PREFIX.agent)) return { perSecond: s.AGENT_RATE_LIMIT_RPS, burst: s.AGENT_RATE_LIMIT_BURST, setting: "AGENT_RATE_LIMIT_RPS" };
  if (bearer.startsWith(PREFIX.user) || bearer.startsWith(PREFIX.session)) return { perSecond: s.RATE_LIMIT_RPS, burst: s.RATE_LIMIT_BURST, setting: "RATE_LIMIT_RPS" };
  return { perSecond: s.ADMIN_RATE_LIMIT_RPS, burst: s.ADMIN_RATE_LIMIT_BURST, setting: "ADMIN_RATE_LIMIT_RPS" };
}

const failureRule = (s: Settings): Rule => ({ perSecond: s.AUTH_FAILURES_PER_MIN / 60, burst: s.AUTH_FAILURES_PER_MIN });

/**
 * The key an address is limited under: an IPv4 address itself, an IPv6 address's /64 (one
 * subscriber's usual allocation, which would otherwise hand a guesser 2^64 fresh addresses).
 */
export function addressKey(ip: string): string {
  // An IPv4 address, or one written inside IPv6 (::ffff:192.0.2.1): the IPv4 address.
  if (!ip.includes(":") || ip.includes(".")) return ip.slice(ip.lastIndexOf(":") + 1);
  const [head = "", tail] = ip.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

let limiterFailures = 0;

/** Asks the limiter; if it fails or is slow, the request goes through and the failure is logged. */
async function ask(what: string, call: () => Promise<Answer>): Promise<Answer | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      call(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${LIMITER_TIMEOUT_MS} ms`)), LIMITER_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    limiterFailures++;
    console.error(`rate limiter: ${what} failed; the request goes through (${limiterFailures} such in this isolate)`, errorText(err));
    return null;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

const limiter = (env: Bindings, name: string) => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(name));

/** Per address, as this isolate last learned it: blocked until, or clear until (ms). */
const standings = new Map<string, { blocked: boolean; until: number }>();

function remember(key: string, blocked: boolean, until: number) {
  standings.delete(key);
  if (standings.size >= ADDRESSES_CACHED) standings.delete(standings.keys().next().value!);
  standings.set(key, { blocked, until });
}

function failureRefusal(s: Settings, retryAfterMs: number): Refusal {
  const retryAfterS = retryAfterSeconds(retryAfterMs);
  return {
    message: `too many failed authentications from this address: the limit is ${s.AUTH_FAILURES_PER_MIN} a minute (AUTH_FAILURES_PER_MIN); retry in ${retryAfterS} s`,
    limit: s.AUTH_FAILURES_PER_MIN,
    retryAfterS,
  };
}

/** What authenticating a bearer secret came to: who holds it, nobody (401), or a limit (429). */
export type Authentication = { resolved: Resolved } | { resolved: null; refusal: Refusal | null };

/**
 * Resolves a bearer secret under both limits. The failed-authentication limit is per client
 * address: an address past it is refused whatever it sends, so a right guess looks like a wrong
 * one; one this isolate already knows to be past it is refused before any lookup; only a secret
 * that does not resolve counts. A request with no client address (`CF-Connecting-IP`, which
 * Cloudflare's edge and wrangler dev always set) is not limited by address. The rate limit is
 * per secret, unless `count` is false (the agents' socket). The lookup, the secret's limiter
 * and the address's (at most once per ADDRESS_CLEAR_MS here while it is clear) are asked at
 * once, so the limits add the slowest of them, not their sum.
 */
export async function authenticate(env: Bindings, bearer: string, ip: string | null, count: boolean): Promise<Authentication> {
  const s = settingsOf(env);
  const lookup = () => resolveSecret(createDb(env.DB), bearer, env.GRIDX_ADMIN_TOKEN);
  if (s.RATE_LIMITS === "off") {
    const resolved = await lookup();
    return resolved ? { resolved } : { resolved: null, refusal: null };
  }
  const key = ip === null ? null : addressKey(ip);
  const now = Date.now();
  const known = key === null ? undefined : standings.get(key);
  const fresh = known && known.until > now ? known : undefined;
  if (fresh?.blocked) return { resolved: null, refusal: failureRefusal(s, fresh.until - now) };
  const failures = failureRule(s);
  const rule = ruleForSecret(bearer, s);
  const [resolved, standing, spent] = await Promise.all([
    lookup(),
    key === null || fresh ? null : ask("an address check", () => limiter(env, `address:${key}`).peek(failures)),
    count ? ask("a token's rate check", async () => limiter(env, `secret:${await sha256Hex(bearer)}`).take(rule)) : null,
  ]);
  if (key !== null && standing) {
    remember(key, !standing.allowed, now + (standing.allowed ? ADDRESS_CLEAR_MS : standing.retryAfterMs));
    if (!standing.allowed) return { resolved: null, refusal: failureRefusal(s, standing.retryAfterMs) };
  }
  if (!resolved) {
    const after = key === null ? null : await ask("counting a failed authentication", () => limiter(env, `address:${key}`).take(failures));
    if (key !== null && after && after.retryAfterMs > 0) remember(key, true, Date.now() + after.retryAfterMs);
    return { resolved: null, refusal: null };
  }
  if (spent && !spent.allowed) {
    const retryAfterS = retryAfterSeconds(spent.retryAfterMs);
    const message = `this token is over its rate limit of ${rule.perSecond} requests/s with bursts of ${rule.burst} (${rule.setting}); retry in ${retryAfterS} s`;
    return { resolved: null, refusal: { message, limit: rule.perSecond, retryAfterS } };
  }
  return { resolved };
}
