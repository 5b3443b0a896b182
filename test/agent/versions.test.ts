import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { AGENT_VERSION } from "../../agent/src/version.ts";
import { CloseCode, FATAL_CLOSES } from "../../protocol/index.ts";

describe("the release's agent version", () => {
  it("is what the control plane recommends (wrangler.toml's AGENT_RECOMMENDED_VERSION)", () => {
    const toml = readFileSync(new URL("../../wrangler.toml", import.meta.url), "utf8");
    expect(/^AGENT_RECOMMENDED_VERSION = "([^"]*)"$/m.exec(toml)?.[1]).toBe(AGENT_VERSION);
  });

  it("makes an agent refused as outdated stop rather than redial", () => {
    expect(FATAL_CLOSES).toContain(CloseCode.outdated);
  });
});
