import { describe, expect, it } from "vitest";
import { ago, bytes, duration, fromNow, keyValues, labels, mib, ofLimit, shellWord, table } from "../../cli/src/format.ts";

describe("table", () => {
  it("aligns columns two spaces apart and does not pad the last one", () => {
    const out = table(
      ["ID", "STATUS", "NAME"],
      [
        ["j_1", "queued", "a"],
        ["j_12345", "failed (exit 3)", "longer name"],
      ],
    );
    expect(out.split("\n")).toEqual(["ID       STATUS           NAME", "j_1      queued           a", "j_12345  failed (exit 3)  longer name"]);
  });

  it("is just the header without rows", () => {
    expect(table(["A", "B"], [])).toBe("A  B");
  });
});

describe("keyValues", () => {
  it("aligns keys and leaves out undefined values", () => {
    expect(keyValues([["id", "j_1"], ["message", undefined], ["status", "queued"]])).toBe("id      j_1\nstatus  queued");
  });
});

describe("times and sizes", () => {
  const now = Date.parse("2026-11-22T12:00:00Z");
  it.each([
    ["2026-11-22T12:00:00Z", "just now"],
    ["2026-11-22T11:59:48Z", "12s ago"],
    ["2026-11-22T11:57:00Z", "3m ago"],
    ["2026-11-22T10:00:00Z", "2h ago"],
    ["2026-11-18T12:00:00Z", "4d ago"],
    [null, "-"],
    ["not a time", "-"],
  ])("shows %s as %s", (iso, text) => {
    expect(ago(iso, now)).toBe(text);
  });

  it.each([
    ["2026-12-22T12:00:00Z", "in 30d"],
    ["2026-11-22T12:04:30Z", "in 4m"],
    ["2026-11-22T12:00:00.500Z", "in 1s"],
    ["2026-11-22T11:57:00Z", "3m ago"],
    [null, "-"],
  ])("shows the time ahead %s as %s", (iso, text) => {
    expect(fromNow(iso, now)).toBe(text);
  });

  it.each([
    [850, "850ms"],
    [4200, "4.2s"],
    [42_000, "42s"],
    [184_000, "3m04s"],
    [7_500_000, "2h05m"],
    [3_600_000, "1h00m"],
    [273_600_000, "3d4h"],
  ])("shows %i ms as %s", (ms, text) => {
    expect(duration(ms)).toBe(text);
  });

  it.each([
    [512, "512 B"],
    [1536, "1.5 KiB"],
    [300 * 1024 * 1024, "300.0 MiB"],
    [2 * 1024 ** 3, "2.0 GiB"],
  ])("shows %i bytes as %s", (n, text) => {
    expect(bytes(n)).toBe(text);
  });

  it("shows MiB and labels", () => {
    expect(mib(512)).toBe("512 MiB");
    expect(mib(2048)).toBe("2 GiB");
    expect(mib(1536)).toBe("1536 MiB");
    expect(labels({})).toBe("-");
    expect(labels({ zone: "lab", os: "linux" })).toBe("zone=lab,os=linux");
  });

  it("shows usage against a limit, and alone where there is none", () => {
    expect(ofLimit(3, 10)).toBe("3/10");
    expect(ofLimit(3, undefined)).toBe("3");
    expect(ofLimit(0, 0)).toBe("0/0");
    expect(ofLimit(1536, 2048, bytes)).toBe("1.5 KiB/2.0 KiB");
  });
});

describe("shellWord", () => {
  it.each([
    ["sweep=lr", "sweep=lr"],
    ["ada@lab", "ada@lab"],
    ["lr sweep", "'lr sweep'"],
    ["it's", "'it'\\''s'"],
    ["$HOME", "'$HOME'"],
  ])("quotes %j as %s", (raw, word) => {
    expect(shellWord(raw)).toBe(word);
  });
});
