import { describe, expect, it } from "vitest";
import { reportedState, upgradeAction } from "../../control-plane/src/fleet/upgrades.ts";

describe("upgradeAction", () => {
  it("does nothing in a pool with no target", () => {
    expect(upgradeAction("0.1.0", null, undefined)).toEqual({ kind: "none" });
  });

  it("orders a worker on another version that was never ordered, or whose order is still pending (it may not have arrived)", () => {
    expect(upgradeAction("0.1.0", "0.2.0", undefined)).toEqual({ kind: "order" });
    expect(upgradeAction("0.1.0", "0.2.0", { toVersion: "0.2.0", state: "pending" })).toEqual({ kind: "order" });
    // An upgrade to an earlier target says nothing about this one.
    expect(upgradeAction("0.1.0", "0.2.0", { toVersion: "0.1.5", state: "rolled_back" })).toEqual({ kind: "order" });
  });

  it("does not order again while an order is in flight, nor after it failed or rolled back (no rollback loop)", () => {
    for (const state of ["downloading", "draining", "failed", "rolled_back"] as const) {
      expect(upgradeAction("0.1.0", "0.2.0", { toVersion: "0.2.0", state })).toEqual({ kind: "none" });
    }
  });

  it("takes a worker that restarted for the target and came back on its old version as rolled back (its own report may be lost)", () => {
    expect(upgradeAction("0.1.0", "0.2.0", { toVersion: "0.2.0", state: "restarting" })).toEqual({ kind: "rolled_back" });
  });

  it("finishes the upgrade of a worker that runs the target, once", () => {
    expect(upgradeAction("0.2.0", "0.2.0", { toVersion: "0.2.0", state: "restarting" })).toEqual({ kind: "done" });
    expect(upgradeAction("0.2.0", "0.2.0", undefined)).toEqual({ kind: "done" });
    expect(upgradeAction("0.2.0", "0.2.0", { toVersion: "0.2.0", state: "done" })).toEqual({ kind: "none" });
  });
});

describe("reportedState", () => {
  const report = (version: string, state: "downloading" | "rolled_back") => ({ version, state, reason: null });

  it("moves the worker's upgrade to what its agent reports", () => {
    expect(reportedState({ toVersion: "0.2.0", state: "pending" }, report("0.2.0", "downloading"))).toBe("downloading");
    expect(reportedState({ toVersion: "0.2.0", state: "restarting" }, report("0.2.0", "rolled_back"))).toBe("rolled_back");
  });

  it("ignores a report with no order, about another version, or after the upgrade finished", () => {
    expect(reportedState(undefined, report("0.2.0", "downloading"))).toBeNull();
    expect(reportedState({ toVersion: "0.3.0", state: "pending" }, report("0.2.0", "rolled_back"))).toBeNull();
    expect(reportedState({ toVersion: "0.2.0", state: "done" }, report("0.2.0", "rolled_back"))).toBeNull();
  });
});
