import type { Principal } from "./auth/principal.ts";

/** Bindings plus the secrets that `wrangler types` cannot see. */
export type Bindings = Env & { GRIDX_ADMIN_TOKEN?: string; S3_ACCESS_KEY_ID?: string; S3_SECRET_ACCESS_KEY?: string; SECRETS_KEY?: string; GRIDX_FAULTS?: string };

export type AppEnv = {
  Bindings: Bindings;
  Variables: { principal: Principal };
};
