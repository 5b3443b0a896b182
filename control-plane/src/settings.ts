import { z } from "zod";
import { POLICIES, type Policy } from "./coordinator/scheduler.ts";

const seconds = (fallback: number) => z.coerce.number().positive().default(fallback);

const PolicyMap = z
  .string()
  .default("")
  .transform((raw, ctx) => {
    const map: Record<string, Policy> = {};
    for (const entry of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
      const [pool, policy] = entry.split("=").map((s) => s.trim());
      if (!pool || !POLICIES.includes(policy as Policy)) {
        ctx.addIssue({ code: "custom", message: `POOL_POLICIES entry "${entry}" is not pool=${POLICIES.join("|")}` });
        return z.NEVER;
      }
      map[pool] = policy as Policy;
    }
    return map;
  });

/** The control plane's settings, read from wrangler vars; every limit has a visible default. */
const SettingsSchema = z.object({
  HEARTBEAT_INTERVAL_S: seconds(15),
  WORKER_TIMEOUT_S: seconds(90),
  HELLO_TIMEOUT_S: seconds(10),
  DEADLINE_GRACE_S: seconds(60),
  ALLOWED_IMAGES: z
    .string()
    .default("gridx/python:latest")
    .transform((s) => s.split(",").map((i) => i.trim()).filter(Boolean)),
  POOL_POLICIES: PolicyMap,
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
});
export type Settings = z.infer<typeof SettingsSchema>;

const cache = new WeakMap<object, Settings>();

/** Parses the settings once per env object; a bad var is a deploy error, so it throws. */
export function settingsOf(env: Env): Settings {
  let s = cache.get(env);
  if (!s) {
    s = SettingsSchema.parse(env);
    cache.set(env, s);
  }
  return s;
}

export function policyFor(settings: Settings, pool: string): Policy {
  return settings.POOL_POLICIES[pool] ?? "first-idle";
}
