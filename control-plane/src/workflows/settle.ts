import { coordinatorFor } from "../coordinator/stub.ts";
import type { Db } from "../db/client.ts";
import { edgesOf, failDependents, parentStates, releaseDependents, type MovedJob } from "../db/workflows.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { jobEventsWritten } from "../events/notify.ts";
import { dependencyVerdict } from "./dependencies.ts";

/** Children settled per round at most: a large array of dependents is settled in parts. */
const SETTLE_CHUNK = 2000;

/**
 * Decides, for jobs waiting on their parents, whether each may now run, must fail, or waits on,
 * from what their parents are now (so settling a job twice, or late, decides the same), and
 * writes it: released jobs' pools are told to schedule; failed ones write their events, which
 * settle their own dependents in turn. Returns what moved.
 */
export async function settleDependents(db: Db, env: Bindings, children: readonly string[], now = Date.now()): Promise<{ released: MovedJob[]; failed: MovedJob[] }> {
  const released: MovedJob[] = [];
  const failed: MovedJob[] = [];
  for (let i = 0; i < children.length; i += SETTLE_CHUNK) {
    const part = children.slice(i, i + SETTLE_CHUNK);
    const edges = await edgesOf(db, part);
    const states = await parentStates(db, edges);
    const byChild = new Map<string, typeof edges>();
    for (const e of edges) byChild.set(e.child, [...(byChild.get(e.child) ?? []), e]);
    const release: string[] = [];
    const fail: { id: string; message: string }[] = [];
    for (const child of part) {
      const verdict = dependencyVerdict((byChild.get(child) ?? []).map((e) => ({ parent: e.parent, condition: e.condition, state: states.get(e.parent) })));
      if (verdict.kind === "release") release.push(child);
      else if (verdict.kind === "fail") fail.push({ id: child, message: verdict.message });
    }
    released.push(...(await releaseDependents(db, release, now)));
    failed.push(...(await failDependents(db, fail, now)));
  }
  await announce(env, released, failed);
  return { released, failed };
}

async function announce(env: Bindings, released: MovedJob[], failed: MovedJob[]): Promise<void> {
  const pools = [...new Set(released.map((j) => j.pool))];
  await Promise.all([
    ...pools.map((pool) => coordinatorFor(env, pool).jobQueued(pool).catch((err: unknown) => console.error(`could not tell the ${pool} coordinator of released jobs; its sweep finds them`, errorText(err)))),
    jobEventsWritten(env, [...released, ...failed].map((j) => j.project)),
  ]);
}
