import { startsBeside, type WorkerCaps } from "../../../protocol/index.ts";
import { HOLDING, type AttemptWithJob } from "../db/attempts.ts";
import { capsOf, type WorkerRow } from "../db/workers.ts";
import type { WorkerView } from "./scheduler.ts";

/** A connected worker as the coordinator last wrote it. */
type LedgerWorker = Pick<WorkerRow, "id" | "slots" | "drain" | "warm"> & { caps: WorkerCaps };

/** One attempt's key, wherever attempts are looked up by job and number. */
export const attemptKey = (jobId: string, attempt: number) => `${jobId}#${attempt}`;
const holds = (a: AttemptWithJob) => (HOLDING as readonly string[]).includes(a.status);

/**
 * The pool's connected workers and the attempts they hold, as D1 has them. The coordinator is
 * the only writer of both, so after each write commits it records the rows it wrote here, and
 * a start, a result or a scheduling round decides on this copy without reading D1 back.
 * Only connected workers are kept: a worker's rows are read afresh when it says hello, and
 * dropped when its last socket goes. Rows here are never changed in place; a write that fails
 * leaves this copy as it was.
 */
export class PoolLedger {
  private readonly workers = new Map<string, LedgerWorker>();
  /** Held attempts by "job#attempt", and the same attempts by worker. */
  private readonly attempts = new Map<string, AttemptWithJob>();
  private readonly byWorker = new Map<string, Map<string, AttemptWithJob>>();

  /** A worker joined (or the ledger was rebuilt): its row and everything it holds, read from D1. */
  join(worker: WorkerRow, holding: readonly AttemptWithJob[]): void {
    this.leave(worker.id);
    this.workers.set(worker.id, { id: worker.id, caps: capsOf(worker), slots: worker.slots, drain: worker.drain, warm: worker.warm });
    this.byWorker.set(worker.id, new Map());
    // In the order they were assigned, as the agent got them: that is the order waiting ones start in.
    for (const a of [...holding].sort((x, y) => x.assignedAt - y.assignedAt || (x.jobId < y.jobId ? -1 : x.jobId > y.jobId ? 1 : 0))) this.record(a);
  }

  /** A worker's last socket went: it and its attempts are forgotten until it joins again. */
  leave(workerId: string): void {
    for (const key of this.byWorker.get(workerId)?.keys() ?? []) this.attempts.delete(key);
    this.byWorker.delete(workerId);
    this.workers.delete(workerId);
  }

  /** A connected worker's drain or warm cache changed. */
  update(workerId: string, change: Partial<Pick<LedgerWorker, "drain" | "warm">>): void {
    const w = this.workers.get(workerId);
    if (w) this.workers.set(workerId, { ...w, ...change });
  }

  /**
   * An attempt as it was just written: kept while it holds a slot, forgotten once it ends.
   * Attempts of workers not connected here are not kept.
   */
  record(a: AttemptWithJob): void {
    const key = attemptKey(a.jobId, a.attempt);
    const mine = this.byWorker.get(a.workerId);
    if (mine && holds(a)) {
      this.attempts.set(key, a);
      mine.set(key, a);
    } else {
      this.attempts.delete(key);
      mine?.delete(key);
    }
  }

  /** A held attempt of a connected worker. */
  attempt(jobId: string, attempt: number): AttemptWithJob | undefined {
    return this.attempts.get(attemptKey(jobId, attempt));
  }

  /**
   * Whether a held attempt waits on its agent for a slot (prefetched), rather than running or
   * able to start now; its start and prepare bounds do not run while it waits.
   */
  waiting(jobId: string, attempt: number): boolean {
    const a = this.attempt(jobId, attempt);
    return a !== undefined && this.split(a.workerId).waiting.includes(a);
  }

  /** Slots held by each project's attempts, for fair share: a prefetched attempt holds none until it can start. */
  slotsByProject(): Map<string, number> {
    const slots = new Map<string, number>();
    for (const id of this.workers.keys()) for (const a of this.split(id).holding) slots.set(a.project, (slots.get(a.project) ?? 0) + 1);
    return slots;
  }

  /** Every connected worker as the scheduler sees it, with what its attempts hold. */
  views(): WorkerView[] {
    const views: WorkerView[] = [];
    for (const w of this.workers.values()) {
      const { holding, waiting } = this.split(w.id);
      const used = { slots: holding.length, cpusMilli: 0, memoryMb: 0, gpuIndices: [] as number[] };
      for (const a of holding) {
        used.cpusMilli += a.cpusMilli;
        used.memoryMb += a.memoryMb;
        used.gpuIndices.push(...a.gpuIndices);
      }
      views.push({ id: w.id, caps: w.caps, slots: w.slots, draining: w.drain !== null, warm: w.warm, used, waiting: waiting.length });
    }
    return views;
  }

  /**
   * A worker's attempts, split as its agent splits them: started ones hold their slots, and
   * assigned ones, in the order they were assigned, start while `startsBeside` lets them; the
   * first that cannot waits, and every one after it.
   */
  private split(workerId: string): { holding: AttemptWithJob[]; waiting: AttemptWithJob[] } {
    const w = this.workers.get(workerId);
    const all = [...(this.byWorker.get(workerId)?.values() ?? [])];
    const holding = all.filter((a) => a.status !== "assigned");
    const waiting: AttemptWithJob[] = [];
    for (const a of all) {
      if (a.status !== "assigned") continue;
      if (w && waiting.length === 0 && startsBeside(holding, a, w.slots, w.caps)) holding.push(a);
      else waiting.push(a);
    }
    return { holding, waiting };
  }
}
