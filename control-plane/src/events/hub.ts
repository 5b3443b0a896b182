import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../env.ts";

/** One per project: pushes its job events to followers of the events stream. */
export class EventHub extends DurableObject<Bindings> {}
