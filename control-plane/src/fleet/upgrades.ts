import type { UpgradeReport, UpgradeState } from "../../../protocol/index.ts";

/*
 * Pool upgrades (pure). The operator sets a pool's target version; each connected worker whose
 * agent runs another version is ordered once. An order in flight, or one that failed or rolled
 * back, is not repeated on the worker's next hello: the rollback would otherwise loop, the
 * agent trying the same broken bundle forever. The operator's next POST starts over.
 */

/** A worker's latest upgrade, as D1 holds it. */
export interface UpgradeRecord {
  toVersion: string;
  state: UpgradeState;
}

export type UpgradeAction =
  /** Nothing to do: no target, or the order was given and is in flight or over. */
  | { kind: "none" }
  /** The worker runs the target now: its upgrade is over. */
  | { kind: "done" }
  /** Tell the worker's agent to fetch and run the target. */
  | { kind: "order" }
  /**
   * It restarted for the target and came back on another version: its launcher rolled the new
   * bundle back, and the agent's own report of it (with the reason) was lost or is on its way.
   */
  | { kind: "rolled_back" };

const GIVEN: readonly UpgradeState[] = ["downloading", "draining", "restarting", "failed", "rolled_back"];

/** What to do about a connected worker whose agent reports `version`, the pool's target being `target` (null: none set). */
export function upgradeAction(version: string, target: string | null, record: UpgradeRecord | undefined): UpgradeAction {
  if (target === null) return { kind: "none" };
  const forTarget = record?.toVersion === target ? record : undefined;
  if (version === target) return forTarget?.state === "done" ? { kind: "none" } : { kind: "done" };
  if (forTarget?.state === "restarting") return { kind: "rolled_back" };
  if (forTarget && GIVEN.includes(forTarget.state)) return { kind: "none" };
  return { kind: "order" };
}

/**
 * The state an agent's report moves its worker's upgrade to, or null to ignore it: a report
 * about another version than the one ordered is stale, and a finished upgrade stays finished.
 */
export function reportedState(record: UpgradeRecord | undefined, report: UpgradeReport): UpgradeState | null {
  if (!record || record.toVersion !== report.version || record.state === "done") return null;
  return report.state;
}
