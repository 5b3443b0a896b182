import type { Bindings } from "../env.ts";
import { eventHubOf } from "./hub.ts";
import { pokeWebhooks } from "../webhooks/poke.ts";

/**
 * Tells the readers of job events that some were written (by the `jobs` triggers, migration
 * 0008) for these projects: the projects' event hubs, which push them to followers, and the
 * webhook dispatcher, which turns them into deliveries. Never throws: a lost notice only delays
 * delivery until the reader's own backstop alarm, since both read `job_events` by cursor.
 */
export function jobEventsWritten(env: Bindings, projects: Iterable<string>): Promise<void> {
  const unique = [...new Set(projects)];
  if (unique.length === 0) return Promise.resolve();
  return Promise.allSettled(unique.flatMap((project) => noticesFor(env, project))).then(() => undefined);
}

function noticesFor(env: Bindings, project: string): Promise<unknown>[] {
  return [eventHubOf(env, project).written(project), pokeWebhooks(env)];
}
