import { readdirSync, readFileSync } from "node:fs";
import { LATEST_MIGRATION } from "../../control-plane/src/db/migrations.ts";
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

describe("the release's database", () => {
  it("names its newest migration where GET /health?deep=1 compares D1 with it", () => {
    const files = readdirSync(new URL("../../migrations/", import.meta.url)).filter((f) => f.endsWith(".sql")).sort();
    expect(`${LATEST_MIGRATION}.sql`).toBe(files.at(-1));
  });
});
