import { app } from "./app.ts";
import { fromPortHost } from "./middleware/port-hosts.ts";
import type { Bindings } from "./env.ts";
import { dailyBackup } from "./backups/store.ts";
import { abortAbandonedUploads } from "./storage/sweeper.ts";
import { sweepRetention } from "./retention/sweep.ts";
import { pokeWebhooks } from "./webhooks/poke.ts";
import { workflowEngineOf } from "./workflows/engine.ts";
import { pokeScheduleClock } from "./workflows/schedule-clock.ts";

export { Coordinator } from "./coordinator/coordinator.ts";
export { RateLimiter } from "./limits/rate-limiter.ts";
export { LogStream } from "./logs/log-stream.ts";
export { EventHub } from "./events/hub.ts";
export { WebhookDispatcher } from "./webhooks/dispatcher.ts";
export { ScheduleClock } from "./workflows/schedule-clock.ts";
export { WorkflowEngine } from "./workflows/engine.ts";

export default {
  // A port host's requests are read as the port's path; nothing else answers there.
  fetch: (request, env, ctx) => app.fetch(fromPortHost(request, env.PORTS_DOMAIN), env, ctx),
  async scheduled(_controller: ScheduledController, env: Bindings, ctx: ExecutionContext) {
    ctx.waitUntil(abortAbandonedUploads(env).then((n) => n && console.log(`aborted ${n} abandoned upload(s)`)));
    ctx.waitUntil(sweepRetention(env).then((r) => console.log("retention sweep", r), (err) => console.error("the retention sweep failed", err)));
    // Once per UTC day; the runs after the first find that day's backup and skip.
    ctx.waitUntil(dailyBackup(env));
    // Backstops: each of these re-arms itself while it has work; this restarts one that ever stopped.
    ctx.waitUntil(pokeWebhooks(env).catch((err) => console.error("poking the webhook dispatcher failed", err)));
    ctx.waitUntil(pokeScheduleClock(env));
    ctx.waitUntil(workflowEngineOf(env).poke().catch((err) => console.error("poking the workflow engine failed", err)));
  },
} satisfies ExportedHandler<Bindings>;
