import { describe, expect, it } from "vitest";
import { atStart, confirmed, EMPTY_STATE, installed, runsAgent, stateDirOf, trialEnded, unreportedRollback, type BundleState } from "../../agent/bin/bundle-choice.mjs";

const v1 = { version: "0.1.0", path: "/s/bundles/0.1.0/gridx-agent.mjs" };
const withPending = (over: Partial<NonNullable<BundleState["pending"]>> = {}): BundleState => ({
  ...EMPTY_STATE,
  current: v1,
  pending: { version: "0.2.0", path: "/s/bundles/0.2.0/gridx-agent.mjs", confirm_s: 120, started_at: null, ...over },
});

describe("the launcher's choice of bundle", () => {
  it("runs the bundle it ships with when nothing was installed", () => {
    expect(atStart(null, 1)).toEqual({ path: null, trial: null, state: EMPTY_STATE });
  });

  it("runs the current bundle", () => {
    expect(atStart({ ...EMPTY_STATE, current: v1 }, 1).path).toBe(v1.path);
  });

  it("drops an upgraded bundle once another package or image is installed over it, and only then", () => {
    const tried = atStart(withPending(), 1000, "0.1.0");
    expect(tried.trial?.over).toBe("0.1.0");
    const upgraded = confirmed(tried.state, "0.2.0")!;
    expect(upgraded.current).toEqual({ version: "0.2.0", path: "/s/bundles/0.2.0/gridx-agent.mjs", over: "0.1.0" });
    // The same install restarting (or one with no version to read) keeps the upgrade, even a downgrade's.
    expect(atStart(upgraded, 2000, "0.1.0").path).toBe("/s/bundles/0.2.0/gridx-agent.mjs");
    expect(atStart(upgraded, 2000, undefined).path).toBe("/s/bundles/0.2.0/gridx-agent.mjs");
    // npm install -g gridx@0.3.0 or a new image: that is what runs.
    const reinstalled = atStart(upgraded, 2000, "0.3.0");
    expect(reinstalled.path).toBeNull();
    expect(reinstalled.state.current).toBeNull();
  });

  it("tries a pending bundle once, marked started", () => {
    const start = atStart(withPending(), 1000);
    expect(start.path).toBe("/s/bundles/0.2.0/gridx-agent.mjs");
    expect(start.trial).toMatchObject({ version: "0.2.0", started_at: 1000, confirm_s: 120 });
    expect(start.state.pending?.started_at).toBe(1000);
  });

  it("rolls back a started pending bundle found at the next start (its run was killed before it connected), running the current one", () => {
    const start = atStart(withPending({ started_at: 1000 }), 2000);
    expect(start.path).toBe(v1.path);
    expect(start.trial).toBeNull();
    expect(start.state.pending).toBeNull();
    expect(start.state.rolled_back).toMatchObject({ version: "0.2.0", at: 2000, reported: false });
    expect(start.state.rolled_back?.reason).toContain("before its hello was accepted");
  });

  it("rolls back a trial that ended unconfirmed, and leaves a confirmed one alone", () => {
    const rolled = trialEnded(withPending({ started_at: 1 }), "0.2.0", "exited with status 1", 5);
    expect(rolled).toMatchObject({ current: v1, pending: null, rolled_back: { version: "0.2.0", reason: "exited with status 1" } });
    const ok = confirmed(withPending({ started_at: 1 }), "0.2.0")!;
    expect(ok).toMatchObject({ current: { version: "0.2.0" }, previous: v1, pending: null });
    expect(trialEnded(ok, "0.2.0", "exited with status 0", 5)).toBeNull();
  });

  it("confirms only the pending version (an old agent running after a rollback confirms nothing)", () => {
    expect(confirmed(withPending(), "0.1.0")).toBeNull();
    expect(confirmed({ ...EMPTY_STATE, current: v1 }, "0.1.0")).toBeNull();
  });

  it("installs a bundle as pending, keeping what runs now as current", () => {
    expect(installed({ ...EMPTY_STATE, current: v1 }, "0.2.0", "/p", 30)).toEqual({ ...EMPTY_STATE, current: v1, pending: { version: "0.2.0", path: "/p", confirm_s: 30, started_at: null } });
  });

  it("tells a rollback once", () => {
    const rolled = trialEnded(withPending({ started_at: 1 }), "0.2.0", "why", 5)!;
    const told = unreportedRollback(rolled)!;
    expect(told.rollback).toMatchObject({ version: "0.2.0", reason: "why" });
    expect(unreportedRollback(told.state)).toBeNull();
  });

  it("finds the state dir as the agent's config does: flag, then GRIDX_STATE_DIR, then the config file, then /var/lib/gridx", () => {
    const none = () => null;
    expect(stateDirOf(["run", "--state-dir", "/a"], { GRIDX_STATE_DIR: "/b" }, none)).toBe("/a");
    expect(stateDirOf(["--state-dir=/a"], {}, none)).toBe("/a");
    expect(stateDirOf([], { GRIDX_STATE_DIR: "/b" }, none)).toBe("/b");
    expect(stateDirOf(["--config", "/etc/x.json"], {}, (f) => (f === "/etc/x.json" ? { stateDir: "/c" } : null))).toBe("/c");
    expect(stateDirOf([], {}, none)).toBe("/var/lib/gridx");
  });

  it("tries bundles only when running the agent, not for install, status or help", () => {
    expect(runsAgent(["run"])).toBe(true);
    expect(runsAgent(["--url", "x"])).toBe(true);
    expect(runsAgent(["install"])).toBe(false);
    expect(runsAgent(["status"])).toBe(false);
  });
});
