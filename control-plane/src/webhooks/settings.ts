import { z } from "zod";
import { TARGET_CLASSES, type TargetClass } from "./target.ts";

const positive = (fallback: number) => z.coerce.number().positive().default(fallback);
const count = (fallback: number) => z.coerce.number().int().min(1).default(fallback);

const AllowTargets = z
  .string()
  .default("")
  .transform((raw, ctx) => {
    const classes = new Set<TargetClass>();
    for (const entry of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
      if (!TARGET_CLASSES.includes(entry as TargetClass)) {
        ctx.addIssue({ code: "custom", message: `WEBHOOK_ALLOW_TARGETS entry "${entry}" is not one of ${TARGET_CLASSES.join(", ")}` });
        return z.NEVER;
      }
      classes.add(entry as TargetClass);
    }
    return classes as ReadonlySet<TargetClass>;
  });

/** The webhook vars of wrangler.toml, each with its default (see docs/settings.md). */
const WebhookSettingsSchema = z.object({
  /** Address classes webhooks may target besides public ones: loopback, private, link-local. */
  WEBHOOK_ALLOW_TARGETS: AllowTargets,
  /** One delivery attempt may take this long, connect to last byte of the answer's headers. */
  WEBHOOK_TIMEOUT_S: positive(10),
  /** The first retry waits this long; each next one twice as long, up to WEBHOOK_BACKOFF_MAX_S. */
  WEBHOOK_BACKOFF_S: positive(30),
  WEBHOOK_BACKOFF_MAX_S: positive(3600),
  /** A delivery not accepted this many hours after its event is given up (`failed`). */
  WEBHOOK_RETRY_FOR_H: positive(24),
  WEBHOOK_MAX_PER_PROJECT: count(20),
  /** Deliveries in flight at once (a Worker opens at most 6 connections at a time). */
  WEBHOOK_CONCURRENCY: count(6),
  /** Events read, and due deliveries sent, per round of the dispatcher. */
  WEBHOOK_BATCH: count(50),
  /** While webhooks exist the dispatcher looks for new events this often even if nobody told it. */
  WEBHOOK_SCAN_S: positive(10),
  /** Delivered and failed deliveries are shown this many days, then deleted. */
  WEBHOOK_KEEP_DAYS: positive(7),
});
export type WebhookSettings = z.infer<typeof WebhookSettingsSchema>;

const cache = new WeakMap<object, WebhookSettings>();

/** Parses the webhook settings once per env object; a bad var is a deploy error, so it throws. */
export function webhookSettingsOf(env: Env): WebhookSettings {
  let s = cache.get(env);
  if (!s) {
    s = WebhookSettingsSchema.parse(env);
    cache.set(env, s);
  }
  return s;
}
