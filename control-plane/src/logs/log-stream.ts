import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../env.ts";

/** One per job: pushes its log lines to followers as the coordinator forwards them. */
export class LogStream extends DurableObject<Bindings> {}
