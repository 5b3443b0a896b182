import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../env.ts";
import { take, type Bucket, type Rule } from "./token-bucket.ts";

/** What the limiter answers: whether the request goes through, and when the next one would. */
export interface Answer {
  allowed: boolean;
  retryAfterMs: number;
}

/**
 * One token bucket (one per API token, one per client address), held in memory only: an
 * object evicted after a quiet spell comes back full, which is where its bucket would be by
 * then, so there is nothing to store. The rule comes with each call, from the Worker's settings.
 */
export class RateLimiter extends DurableObject<Bindings> {
  #bucket: Bucket | undefined;

  /** Spends a token if there is one. */
  take(rule: Rule): Answer {
    return this.#apply(rule, true);
  }

  /** Whether a token is there, spending none. */
  peek(rule: Rule): Answer {
    return this.#apply(rule, false);
  }

  #apply(rule: Rule, consume: boolean): Answer {
    const verdict = take(this.#bucket, rule, Date.now(), consume);
    this.#bucket = verdict.bucket;
    return { allowed: verdict.allowed, retryAfterMs: verdict.retryAfterMs };
  }
}
