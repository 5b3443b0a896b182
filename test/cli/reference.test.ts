import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { commandHelp } from "../../cli/src/cli.ts";
import { cliReference, REFERENCE_PATH } from "../../cli/src/reference.ts";
import { COMMANDS } from "../../cli/src/registry.ts";

describe("docs/cli.md", () => {
  it("is the commands' help as the code has it (regenerate: node --import tsx cli/src/reference.ts)", () => {
    expect(readFileSync(REFERENCE_PATH, "utf8")).toBe(cliReference());
  });

  it("has every command's usage and options", () => {
    const doc = cliReference();
    for (const c of COMMANDS) {
      expect(doc).toContain(`### gridx ${c.name}\n`);
      expect(doc).toContain(commandHelp(c).split("\n\nExamples:")[0]);
    }
  });
});
