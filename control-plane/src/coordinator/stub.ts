import type { Bindings } from "../env.ts";
import type { Coordinator } from "./coordinator.ts";

/** The coordinator of one pool (one Durable Object per pool name). */
export function coordinatorFor(env: Bindings, pool: string): DurableObjectStub<Coordinator> {
  const ns = env.COORDINATOR as unknown as DurableObjectNamespace<Coordinator>;
  return ns.get(ns.idFromName(pool));
}
