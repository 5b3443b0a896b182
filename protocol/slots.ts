import type { WorkerCaps } from "./messages.ts";

/** What an attempt holds of its worker from its start to its container's exit. */
export interface SlotClaim {
  cpusMilli: number;
  memoryMb: number;
}

export const cpusMilli = (cpus: number) => Math.round(cpus * 1000);

/**
 * Whether an attempt may start beside those that hold slots now: a free slot, and room for
 * its CPUs and memory. Both sides decide it alike: the agent, to start a prefetched attempt
 * the moment it may; the coordinator, to count that attempt as running rather than waiting.
 * Waiting attempts start in the order they were assigned.
 *
 * @example
 * startsBeside([{ cpusMilli: 1000, memoryMb: 512 }], { cpusMilli: 1000, memoryMb: 512 }, 2, { cpu_cores: 2, memory_mb: 4096 }); // true
 */
export function startsBeside(holding: readonly SlotClaim[], next: SlotClaim, slots: number, caps: Pick<WorkerCaps, "cpu_cores" | "memory_mb">): boolean {
  if (holding.length >= slots) return false;
  const cpus = holding.reduce((n, c) => n + c.cpusMilli, next.cpusMilli);
  const memory = holding.reduce((n, c) => n + c.memoryMb, next.memoryMb);
  // One attempt alone always starts: the scheduler placed it here, so it fits the machine.
  return holding.length === 0 || (cpus <= cpusMilli(caps.cpu_cores) && memory <= caps.memory_mb);
}
