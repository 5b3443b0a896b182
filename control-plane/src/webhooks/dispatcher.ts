import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../env.ts";

/** Turns job events into webhook deliveries and sends them, retrying with backoff. */
export class WebhookDispatcher extends DurableObject<Bindings> {}
