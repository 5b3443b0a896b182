import type { AttemptUsage } from "../../../protocol/index.ts";

/** A job's usage over its attempts: times add up, peak memory is the largest; null when none reported. */
export function totalUsage(attempts: readonly (AttemptUsage | null)[]): AttemptUsage | null {
  const reported = attempts.filter((u): u is AttemptUsage => u !== null);
  if (reported.length === 0) return null;
  const sum = (f: (u: AttemptUsage) => number) => Math.round(reported.reduce((n, u) => n + f(u), 0) * 1000) / 1000;
  return { cpu_s: sum((u) => u.cpu_s), peak_memory_mb: Math.max(...reported.map((u) => u.peak_memory_mb)), gpu_s: sum((u) => u.gpu_s), wall_s: sum((u) => u.wall_s) };
}
