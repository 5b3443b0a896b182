/** Order statistics for benchmark samples. */
export function quantile(samples: number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export const median = (s: number[]) => quantile(s, 0.5);
export const p99 = (s: number[]) => quantile(s, 0.99);

export interface Figure {
  section: string;
  name: string;
  value: number;
  unit: string;
  /** The target from the issue, where there is one, as text (e.g. "<= 150"). */
  target?: string;
}

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
