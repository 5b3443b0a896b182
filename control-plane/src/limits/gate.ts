import type { Principal } from "../auth/principal.ts";
import { resolveSecret, type Resolved } from "../auth/tokens.ts";
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
/** Addresses this isolate knows to be over their failure limit, answered with no lookup at all. */
const BLOCKED_CACHED = 10_000;

type Limited = Rule & { setting: string };

/** The per-token rule for a kind of token. */
export function ruleFor(kind: Principal["kind"], s: Settings): Limited {
  if (kind === "admin") return { perSecond: s.ADMIN_RATE_LIMIT_RPS, burst: s.ADMIN_RATE_LIMIT_BURST, setting: "ADMIN_RATE_LIMIT_RPS" };
  if (kind === "agent") return { perSecond: s.AGENT_RATE_LIMIT_RPS, burst: s.AGENT_RATE_LIMIT_BURST, setting: "AGENT_RATE_LIMIT_RPS" };
  return { perSecond: s.RATE_LIMIT_RPS, burst: s.RATE_LIMIT_BURST, setting: "RATE_LIMIT_RPS" };
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

const blocked = new Map<string, number>();

function rememberBlocked(key: string, until: number) {
  blocked.delete(key);
  if (blocked.size >= BLOCKED_CACHED) blocked.delete(blocked.keys().next().value!);
  blocked.set(key, until);
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
 * Resolves a bearer secret under the per-address limit on failed authentications. An address
 * past it is refused whatever it sends, so a right guess looks like a wrong one; one this
 * isolate already knows to be past it is refused before any lookup. Only a secret that does
 * not resolve counts. A request with no client address (`CF-Connecting-IP`, which Cloudflare's
 * edge and wrangler dev always set) is not limited by address.
 */
export async function authenticate(env: Bindings, bearer: string, ip: string | null): Promise<Authentication> {
  const s = settingsOf(env);
  const lookup = () => resolveSecret(createDb(env.DB), bearer, env.GRIDX_ADMIN_TOKEN);
  if (s.RATE_LIMITS === "off" || ip === null) {
    const resolved = await lookup();
    return resolved ? { resolved } : { resolved: null, refusal: null };
  }
  const key = addressKey(ip);
  const now = Date.now();
  const until = blocked.get(key) ?? 0;
  if (until > now) return { resolved: null, refusal: failureRefusal(s, until - now) };
  const rule = failureRule(s);
  const [resolved, standing] = await Promise.all([lookup(), ask("an address check", () => limiter(env, `address:${key}`).peek(rule))]);
  if (standing && !standing.allowed) {
    rememberBlocked(key, now + standing.retryAfterMs);
    return { resolved: null, refusal: failureRefusal(s, standing.retryAfterMs) };
  }
  if (resolved) return { resolved };
  const after = await ask("counting a failed authentication", () => limiter(env, `address:${key}`).take(rule));
  if (after && after.retryAfterMs > 0) rememberBlocked(key, Date.now() + after.retryAfterMs);
  return { resolved: null, refusal: null };
}

/** Spends one of a token's requests; a refusal when it has none left. */
export async function spend(env: Bindings, principal: Principal): Promise<Refusal | null> {
  const s = settingsOf(env);
  if (s.RATE_LIMITS === "off") return null;
  const rule = ruleFor(principal.kind, s);
  const answer = await ask("a token's rate check", () => limiter(env, `token:${principal.tokenId}`).take(rule));
  if (!answer || answer.allowed) return null;
  const retryAfterS = retryAfterSeconds(answer.retryAfterMs);
  return {
    message: `this ${principal.kind} token is over its rate limit of ${rule.perSecond} requests/s with bursts of ${rule.burst} (${rule.setting}); retry in ${retryAfterS} s`,
    limit: rule.perSecond,
    retryAfterS,
  };
}
