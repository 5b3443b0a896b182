import type { Principal } from "./auth/principal.ts";

/** Bindings plus the secrets that `wrangler types` cannot see. */
export type Bindings = Env & { GRIDX_ADMIN_TOKEN?: string };

export type AppEnv = {
  Bindings: Bindings;
  Variables: { principal: Principal };
};
