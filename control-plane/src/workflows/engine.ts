import { DurableObject } from "cloudflare:workers";
import { createDb } from "../db/client.ts";
import { anyWaitingOnParents, lastEventId, waitingChildrenOfEvents } from "../db/workflows.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { settleDependents } from "./settle.ts";

/** Storage key of the id of the last job event whose dependents were settled. */
const CURSOR = "cursor";

/** Job events read per step: each step is one bounded query, whatever the table holds. */
const WINDOW = 5000;

/** Steps per alarm at most; a longer backlog continues on the next alarm, at once. */
const STEPS_PER_ALARM = 40;

/** While jobs wait on parents, events are read at least this often even when no poke came. */
const BACKSTOP_MS = 10_000;

/** After a failed round (D1 down), the next one comes this much later. */
const AFTER_FAILED_MS = 5_000;

/**
 * Settles dependent jobs as their parents end: one for the grid (`workflowEngineOf`). It reads
 * `job_events` (written by triggers in the transaction of every status change, whichever
 * statement made it) after its cursor, finds the waiting children of jobs and arrays that
 * ended, and settles them (settle.ts); a failed child's own event then settles its children.
 * The cursor moves only after a step's writes, and settling is decided from the parents' state
 * now, so a crash or a repeated step changes nothing. The alarm never throws and re-arms while
 * work remains, and every BACKSTOP_MS while any job waits on its parents.
 */
export class WorkflowEngine extends DurableObject<Bindings> {
  async poke(): Promise<void> {
    const now = Date.now();
    const at = await this.ctx.storage.getAlarm();
    if (at === null || at > now) await this.ctx.storage.setAlarm(now);
  }

  override async alarm(): Promise<void> {
    let next: number | null = Date.now() + AFTER_FAILED_MS;
    try {
      next = await this.round();
    } catch (err) {
      console.error("workflow engine: settling dependents failed; trying again", errorText(err));
    }
    if (next !== null) await this.ctx.storage.setAlarm(next).catch((err: unknown) => console.error("workflow engine: setAlarm failed", errorText(err)));
  }

  /** Reads events up to the newest (or STEPS_PER_ALARM windows); returns when to run next, or null. */
  private async round(): Promise<number | null> {
    const db = createDb(this.env.DB);
    let cursor = (await this.ctx.storage.get<number>(CURSOR)) ?? 0;
    const newest = await lastEventId(db);
    for (let step = 0; step < STEPS_PER_ALARM && cursor < newest; step++) {
      const upTo = Math.min(newest, cursor + WINDOW);
      const children = await waitingChildrenOfEvents(db, cursor, upTo);
      if (children.length) await settleDependents(db, this.env, children);
      cursor = upTo;
      await this.ctx.storage.put(CURSOR, cursor);
    }
    if (cursor < (await lastEventId(db))) return Date.now();
    return (await anyWaitingOnParents(db)) ? Date.now() + BACKSTOP_MS : null;
  }
}

/** The grid's one engine: job events are one sequence, so one reader with one cursor sees each once. */
export const workflowEngineOf = (env: Bindings) => env.WORKFLOWS.get(env.WORKFLOWS.idFromName("workflows"));
