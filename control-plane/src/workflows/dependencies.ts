import type { DependencyCondition, JobStatus } from "../../../protocol/index.ts";

/*
 * Whether a job that depends on others may run, decided without I/O from what its parents are
 * now. A parent is a job, or an array meaning every one of its tasks.
 */

/** A parent as it is now: a job's status, or an array's tasks counted by status. Undefined: it no longer exists. */
export type ParentState = { kind: "job"; status: JobStatus } | { kind: "array"; count: number; byStatus: Partial<Record<JobStatus, number>> };

export interface Edge {
  parent: string;
  condition: DependencyCondition;
  state: ParentState | undefined;
}

export type EdgeState = "met" | "waiting" | { never: string };

export type DependencyVerdict = { kind: "release" } | { kind: "wait"; on: string[] } | { kind: "fail"; parent: string; message: string };

const UNFINISHED: readonly JobStatus[] = ["queued", "assigned", "running"];

/** One edge: met, still waiting, or never to be met (and why). */
export function edgeState(e: Edge): EdgeState {
  const s = e.state;
  if (!s) return { never: `${e.parent} no longer exists` };
  if (s.kind === "job") {
    if (UNFINISHED.includes(s.status)) return "waiting";
    if (s.status === "completed" || e.condition === "finished") return "met";
    return { never: `${e.parent} ended ${s.status}, and this job needs it completed` };
  }
  const n = (status: JobStatus) => s.byStatus[status] ?? 0;
  const unfinished = UNFINISHED.reduce((sum, status) => sum + n(status), 0);
  const bad = n("failed") + n("canceled");
  if (e.condition === "completed" && bad > 0) {
    return { never: `${bad} of the ${s.count} tasks of ${e.parent} ended failed or canceled, and this job needs them all completed` };
  }
  return unfinished === 0 ? "met" : "waiting";
}

/** Any edge that can never be met fails the job (the first, in the order given); else it waits for those still open, or runs. */
export function dependencyVerdict(edges: readonly Edge[]): DependencyVerdict {
  const states = edges.map((e) => [e, edgeState(e)] as const);
  for (const [e, s] of states) {
    if (typeof s === "object") return { kind: "fail", parent: e.parent, message: `dependency_failed: ${s.never}` };
  }
  const open = states.filter(([, s]) => s === "waiting").map(([e]) => e.parent);
  return open.length ? { kind: "wait", on: open } : { kind: "release" };
}

/** The sentence `pending_reason` gives a job waiting for its parents. */
export const waitingFor = (open: readonly string[]): string =>
  open.length <= 1 ? `waiting for ${open[0] ?? "its dependencies"}` : `waiting for ${open[0]} and ${open.length - 1} more`;

/**
 * A cycle among a batch's items, as the items on it (`$N` references, by position), or null.
 * Each item lists the positions it depends on.
 */
export function findCycle(edges: readonly (readonly number[])[]): number[] | null {
  const state = new Array<0 | 1 | 2>(edges.length).fill(0);
  const path: number[] = [];
  const visit = (i: number): number[] | null => {
    if (state[i] === 2) return null;
    if (state[i] === 1) return path.slice(path.indexOf(i)).concat(i);
    state[i] = 1;
    path.push(i);
    for (const j of edges[i] ?? []) {
      if (j < 0 || j >= edges.length) continue;
      const cycle = visit(j);
      if (cycle) return cycle;
    }
    path.pop();
    state[i] = 2;
    return null;
  };
  for (let i = 0; i < edges.length; i++) {
    const cycle = visit(i);
    if (cycle) return cycle;
  }
  return null;
}

/** The batch's items in an order where each comes after the items it depends on (no cycle assumed). */
export function topologicalOrder(edges: readonly (readonly number[])[]): number[] {
  const done = new Set<number>();
  const order: number[] = [];
  const visit = (i: number) => {
    if (done.has(i)) return;
    done.add(i);
    for (const j of edges[i] ?? []) if (j >= 0 && j < edges.length) visit(j);
    order.push(i);
  };
  for (let i = 0; i < edges.length; i++) visit(i);
  return order;
}
