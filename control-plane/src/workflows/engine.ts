import { DurableObject } from "cloudflare:workers";
import { createDb, type Db } from "../db/client.ts";
import { anyWaitingOnParents, lastEventId, waitingChildrenOfEvents, waitingOnParents } from "../db/workflows.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { settleDependents } from "./settle.ts";

/** Storage key of the id of the last job event whose dependents were settled. */
const CURSOR = "cursor";
/** Storage key of the last waiting job the backstop settled ("" : start again from the first). */
const BACKSTOP_AFTER = "backstop_after";

/** Job events read per step: each step is one bounded query, whatever the table holds. */
const WINDOW = 5000;

/** Steps per alarm at most; a longer backlog continues on the next alarm, at once. */
const STEPS_PER_ALARM = 40;

/** While jobs wait on parents, events are read at least this often even when no poke came. */
const BACKSTOP_MS = 10_000;

/** Waiting jobs the backstop settles per round, whatever their events said: a page, the next round the next page. */
const BACKSTOP_PAGE = 500;

/** After a failed round (D1 down), the next one comes this much later. */
const AFTER_FAILED_MS = 5_000;

/**
 * Settles dependent jobs as their parents end: one for the grid (`workflowEngineOf`). It reads
 * `job_events` (written by triggers in the transaction of every status change, whichever
 * statement made it) after its cursor, finds the waiting children of jobs and arrays that
 * ended, and settles them (settle.ts); a failed child's own event then settles its children.
 * The cursor moves only after a step's writes, and settling is decided from the parents' state
 * now, so a crash or a repeated step changes nothing. The alarm never throws and re-arms while
 * work remains, and every BACKSTOP_MS while any job waits on its parents; then it also settles
 * a page of the waiting jobs themselves, in id order across rounds, so one whose parent's end
 * was read before it was settled (a submit that failed after its insert) is not left waiting.
 */
export class WorkflowEngine extends DurableObject<Bindings> {
  /** When the waiting jobs were last paged through (in memory: a restart pages once more, which is harmless). */
  private backstopAt = 0;

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
    if (!(await anyWaitingOnParents(db))) return null;
    if (Date.now() - this.backstopAt >= BACKSTOP_MS) await this.settleAPage(db);
    return Date.now() + BACKSTOP_MS;
  }

  private async settleAPage(db: Db): Promise<void> {
    this.backstopAt = Date.now();
    const after = (await this.ctx.storage.get<string>(BACKSTOP_AFTER)) ?? "";
    const page = await waitingOnParents(db, after, BACKSTOP_PAGE);
    if (page.length) await settleDependents(db, this.env, page);
    await this.ctx.storage.put(BACKSTOP_AFTER, page.length === BACKSTOP_PAGE ? page.at(-1)! : "");
  }
}

/** The grid's one engine: job events are one sequence, so one reader with one cursor sees each once. */
export const workflowEngineOf = (env: Bindings) => env.WORKFLOWS.get(env.WORKFLOWS.idFromName("workflows"));
