import type { Bindings } from "../env.ts";

/**
 * The grid's one dispatcher: job events are one sequence (ids in commit order), so one reader
 * with one cursor sees each exactly once, every-project webhooks included.
 */
export const dispatcherOf = (env: Bindings) => env.WEBHOOKS.get(env.WEBHOOKS.idFromName("webhooks"));

/** Tells the dispatcher that job events were written, so it delivers them now rather than at its next scan. */
export const pokeWebhooks = (env: Bindings): Promise<void> => dispatcherOf(env).poke();
