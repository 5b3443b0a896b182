import { describe, expect, it } from "vitest";
import { byteSize, integer, memoryMb, pairs, parseFlags, seconds, splitAtProgram } from "../../cli/src/args.ts";
import { UsageError } from "../../cli/src/errors.ts";
import { JOB_FLAGS } from "../../cli/src/job-request.ts";

const options = { ...JOB_FLAGS, json: { type: "boolean" }, help: { type: "boolean", short: "h" }, output: { type: "string", short: "o" } } as const;

describe("splitAtProgram", () => {
  it.each([
    [["job.py"], [], ["job.py"]],
    [["--pool", "gpu", "train.py", "--lr", "0.1", "--json"], ["--pool", "gpu"], ["train.py", "--lr", "0.1", "--json"]],
    [["--pool=gpu", "--json", "train.py"], ["--pool=gpu", "--json"], ["train.py"]],
    [["-e", "A=1", "-h", "job.py", "-h"], ["-e", "A=1", "-h"], ["job.py", "-h"]],
    [["-oFILE", "x"], ["-oFILE"], ["x"]],
    [["--image", "gridx/python:latest", "--", "python3", "-c", "print(1)"], ["--image", "gridx/python:latest"], ["python3", "-c", "print(1)"]],
    [["--image", "img", "python3", "--version"], ["--image", "img"], ["python3", "--version"]],
    [["--json"], ["--json"], []],
    [["--", "--weird.py"], [], ["--weird.py"]],
    [["-"], [], ["-"]],
  ])("splits %j into flags %j and program %j", (args, flags, program) => {
    expect(splitAtProgram(args, options)).toEqual({ flags, program });
  });
});

describe("parseFlags", () => {
  it("parses known flags and collects repeated ones", () => {
    const { values, positionals } = parseFlags("submit", ["--label", "a=1", "--label", "b=2", "--pool", "p", "x"], options);
    expect(values).toMatchObject({ label: ["a=1", "b=2"], pool: "p" });
    expect(positionals).toEqual(["x"]);
  });

  it("answers an unknown flag with a usage error pointing at --help", () => {
    expect(() => parseFlags("list", ["--bogus"], options)).toThrow(UsageError);
    expect(() => parseFlags("list", ["--bogus"], options)).toThrow(/--bogus.*gridx list --help/);
  });
});

describe("flag values", () => {
  it.each([
    ["512", 512],
    ["512m", 512],
    ["512MiB", 512],
    ["512mb", 512],
    ["2g", 2048],
    ["2G", 2048],
    ["1.5g", 1536],
    ["1t", 1048576],
    ["2048k", 2],
  ])("reads memory %s as %i MiB", (raw, mb) => {
    expect(memoryMb("--memory", raw)).toBe(mb);
  });

  it.each(["", "lots", "0", "-1g", "1.5k", "2x"])("refuses memory %j", (raw) => {
    expect(() => memoryMb("--memory", raw)).toThrow(/--memory takes a size/);
  });

  it.each([
    ["0", 0],
    ["1048576", 1048576],
    ["1k", 1024],
    ["1.5KiB", 1536],
    ["500g", 500 * 1024 ** 3],
    ["2T", 2 * 1024 ** 4],
    ["1pb", 1024 ** 5],
  ])("reads size %s as %i bytes", (raw, n) => {
    expect(byteSize("--max-dataset-bytes", raw)).toBe(n);
  });

  it.each(["", "lots", "-1g", "1.5", "0.1k", "1e3", "9999999p"])("refuses size %j", (raw) => {
    expect(() => byteSize("--max-dataset-bytes", raw)).toThrow(/--max-dataset-bytes takes a size such as 500g/);
  });

  it.each([
    ["90", 90],
    ["90s", 90],
    ["10m", 600],
    ["2h", 7200],
    ["1h30m", 5400],
    ["2d", 172800],
    ["1D2H", 93600],
  ])("reads duration %s as %i s", (raw, s) => {
    expect(seconds("--timeout", raw)).toBe(s);
  });

  it.each(["", "soon", "1.5h", "10 m", "h1", "1h-2m"])("refuses duration %j", (raw) => {
    expect(() => seconds("--timeout", raw)).toThrow(/--timeout takes a duration/);
  });

  it("reads whole numbers, with optional bounds", () => {
    expect(integer("--priority", "-5")).toBe(-5);
    expect(integer("--limit", "200", 1, 200)).toBe(200);
    expect(() => integer("--limit", "201", 1, 200)).toThrow(/from 1 to 200/);
    expect(() => integer("--gpus", "1.5")).toThrow(/whole number/);
  });

  it("reads KEY=VALUE pairs, a bare KEY from the fallback", () => {
    expect(pairs("--env", ["A=1", "B=x=y", "C="], () => undefined)).toEqual({ A: "1", B: "x=y", C: "" });
    expect(pairs("--env", ["HOME"], (k) => (k === "HOME" ? "/home/me" : undefined))).toEqual({ HOME: "/home/me" });
    expect(() => pairs("--env", ["NOPE"], () => undefined)).toThrow(/NOPE is not set here/);
    expect(() => pairs("--label", ["zone"])).toThrow(/--label takes KEY=VALUE/);
    expect(() => pairs("--label", ["=x"])).toThrow(/--label takes KEY=VALUE/);
  });
});
