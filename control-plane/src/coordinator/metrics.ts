/** The coordinator's own counters, exposed through `/metrics` (see routes/ops.ts). */
export const COUNTERS = {
  refused: "gridx_agent_messages_refused_total",
  fenced: "gridx_agent_messages_fenced_total",
  settlementRetries: "gridx_settlement_retries_total",
  alarmFailures: "gridx_alarm_failures_total",
  handlerFailures: "gridx_coordinator_handler_failures_total",
} as const;
export type Counter = (typeof COUNTERS)[keyof typeof COUNTERS];

export const COUNTER_HELP: Record<Counter, string> = {
  [COUNTERS.refused]: "Agent messages refused: about an attempt the sending worker does not hold, or a probe not sent to it.",
  [COUNTERS.fenced]: "Late or repeated agent reports about an attempt that is over, ignored.",
  [COUNTERS.settlementRetries]: "Group writes of agent starts and results retried after a failed D1 write.",
  [COUNTERS.alarmFailures]: "Sweeps (alarms) that failed; the next one is scheduled regardless.",
  [COUNTERS.handlerFailures]: "Socket, RPC or alarm handlers that caught an error and went on.",
};

/** One sample: a counter, its labels (besides the pool), and its value. */
export interface Sample {
  name: Counter;
  labels: Record<string, string>;
  value: number;
}

/**
 * Counters since this pool's coordinator was created. They are kept in the object's storage at
 * each sweep, so an eviction loses at most one sweep's worth (Prometheus reads a counter that
 * went down as a reset).
 */
export class CoordinatorMetrics {
  private readonly values = new Map<string, Sample>();

  constructor(saved: Sample[] = []) {
    for (const s of saved) this.values.set(keyOf(s.name, s.labels), { ...s });
  }

  count(name: Counter, labels: Record<string, string> = {}, by = 1): void {
    const key = keyOf(name, labels);
    const s = this.values.get(key);
    if (s) s.value += by;
    else this.values.set(key, { name, labels, value: by });
  }

  snapshot(): Sample[] {
    return [...this.values.values()].map((s) => ({ ...s, labels: { ...s.labels } }));
  }
}

const keyOf = (name: string, labels: Record<string, string>) => `${name}${JSON.stringify(Object.entries(labels).sort())}`;
