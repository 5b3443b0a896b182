import { describe, expect, it } from "vitest";
import { agentVersionVerdict, compareVersions } from "../../control-plane/src/fleet/agent-versions.ts";

describe("agent versions", () => {
  it("orders MAJOR.MINOR.PATCH numerically, and nothing else", () => {
    expect(compareVersions("0.10.0", "0.9.9")).toBe(1);
    expect(compareVersions("1.2.3", "1.2.3-rc.1")).toBe(0);
    expect(compareVersions("v2.0.0", "10.0.0")).toBe(-1);
    expect(compareVersions("test", "1.0.0")).toBeNull();
  });

  it("refuses below the minimum naming what to install, flags below the recommended, passes the rest", () => {
    const bounds = { minimum: "0.2.0", recommended: "0.3.1" };
    expect(agentVersionVerdict("0.1.9", bounds)).toEqual({
      kind: "refused",
      minimum: "0.2.0",
      message: "gridx agent 0.1.9 is older than this control plane's minimum 0.2.0: install 0.3.1 (npm install -g gridx@0.3.1, then restart the service)",
    });
    expect(agentVersionVerdict("0.2.0", bounds)).toEqual({ kind: "outdated", recommended: "0.3.1" });
    expect(agentVersionVerdict("0.3.1", bounds)).toEqual({ kind: "current" });
    expect(agentVersionVerdict("1.0.0", bounds)).toEqual({ kind: "current" });
  });

  it("never refuses a development build or when no bounds are set", () => {
    expect(agentVersionVerdict("dev", { minimum: "9.0.0", recommended: "9.0.0" })).toEqual({ kind: "current" });
    expect(agentVersionVerdict("0.0.1", { minimum: "", recommended: "" })).toEqual({ kind: "current" });
  });
});
