import type { Bindings } from "../env.ts";
import { eventHubOf } from "./hub.ts";
import { pokeWebhooks } from "../webhooks/poke.ts";
import { workflowEngineOf } from "../workflows/engine.ts";

/**
 * Tells the readers of job events that some were written (by the `jobs` triggers, migration
 * 0008) for these projects: the projects' event hubs, which push them to followers, the
 * webhook dispatcher, which turns them into deliveries, and the workflow engine, which settles
 * the jobs that depend on them. Never throws: a lost notice only delays the work until the
 * reader's own backstop alarm, since each reads `job_events` by cursor.
 */
export function jobEventsWritten(env: Bindings, projects: Iterable<string>): Promise<void> {
  const unique = [...new Set(projects)];
  if (unique.length === 0) return Promise.resolve();
  return Promise.allSettled([...unique.map((project) => eventHubOf(env, project).written(project)), pokeWebhooks(env), workflowEngineOf(env).poke()]).then(() => undefined);
}
