import { startsBeside, type SlotClaim, type WorkerCaps } from "../../protocol/index.ts";

interface Waiter {
  key: string;
  claim: SlotClaim;
  grant: () => void;
}

/**
 * The agent's slots. A job holds one from its start to its container's exit; a prefetched
 * job, taken and prepared while every slot was busy, waits here and starts the moment one
 * frees, in the order the jobs came, as `startsBeside` (shared with the coordinator) says.
 *
 * @example
 * const gate = new SlotGate(2, caps);
 * await gate.take("job#1", { cpusMilli: 1000, memoryMb: 512 }, stop);
 * gate.release("job#1");
 */
export class SlotGate {
  private readonly holding = new Map<string, SlotClaim>();
  private readonly waiting: Waiter[] = [];

  constructor(
    private readonly slots: number,
    private readonly caps: Pick<WorkerCaps, "cpu_cores" | "memory_mb">,
  ) {}

  /** Resolves once `key` holds a slot, or at once when `stop` aborts (the caller then starts nothing). */
  take(key: string, claim: SlotClaim, stop: AbortSignal): Promise<void> {
    if (this.holding.has(key) || stop.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: Waiter = { key, claim, grant: resolve };
      const abandon = () => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve();
        // A job that gave up its place in line may have held back the ones behind it.
        this.pump();
      };
      stop.addEventListener("abort", abandon, { once: true });
      waiter.grant = () => {
        stop.removeEventListener("abort", abandon);
        resolve();
      };
      this.waiting.push(waiter);
      this.pump();
    });
  }

  /** `key`'s container is gone (or never started): its slot goes to the next in line. Safe to call more than once. */
  release(key: string): void {
    if (this.holding.delete(key)) this.pump();
  }

  /** Jobs holding a slot, and jobs waiting for one. */
  get counts(): { holding: number; waiting: number } {
    return { holding: this.holding.size, waiting: this.waiting.length };
  }

  private pump(): void {
    while (this.waiting.length && startsBeside([...this.holding.values()], this.waiting[0]!.claim, this.slots, this.caps)) {
      const next = this.waiting.shift()!;
      this.holding.set(next.key, next.claim);
      next.grant();
    }
  }
}
