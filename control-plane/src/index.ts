import { app } from "./app.ts";
import type { Bindings } from "./env.ts";
import { abortAbandonedUploads } from "./storage/sweeper.ts";

export { Coordinator } from "./coordinator/coordinator.ts";
export { RateLimiter } from "./limits/rate-limiter.ts";
export { LogStream } from "./logs/log-stream.ts";
export { EventHub } from "./events/hub.ts";
export { WebhookDispatcher } from "./webhooks/dispatcher.ts";

export default {
  fetch: app.fetch,
  async scheduled(_controller: ScheduledController, env: Bindings, ctx: ExecutionContext) {
    ctx.waitUntil(abortAbandonedUploads(env).then((n) => n && console.log(`aborted ${n} abandoned upload(s)`)));
  },
} satisfies ExportedHandler<Bindings>;
