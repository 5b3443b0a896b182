import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { folderBytes, walkFolder } from "../../agent/src/folder-bytes.ts";
import { judgeOutputs, OUTPUT_LIMITS } from "../../agent/src/runner/output-rules.ts";
import { measureOutput } from "../../agent/src/runner/supervise.ts";
import { listFiles, type OutputFile } from "../../agent/src/transfer/uploader.ts";

const file = (name: string, size = 1): OutputFile => ({ name, path: `/out/${name}`, size });
const names = (files: OutputFile[]) => files.map((f) => f.name);
let made: string[] = [];
afterEach(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
  made = [];
});

/** A folder removed after the test; in memory where there is /dev/shm, since a test here makes 100,000 files. */
function tempDir() {
  const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "gridx-outputs-"));
  made.push(dir);
  return dir;
}

/** `count` empty files f000000… in `dir`, made by one process rather than `count` calls. */
function emptyFiles(dir: string, count: number) {
  execFileSync("sh", ["-c", `seq -f 'f%06g' 1 ${count} | xargs touch`], { cwd: dir });
}

describe("judgeOutputs", () => {
  it("keeps every file within the rules and the limits, and notes nothing", () => {
    const j = judgeOutputs([file("a.csv"), file("sub/b c.txt")], true, 100);
    expect(j).toEqual({ keep: [file("a.csv"), file("sub/b c.txt")], refused: [], left: { files: 0, bytes: 0 }, over: null, note: null });
  });

  it("refuses bad and reserved names with a note naming the first few, and the job's outcome stands", () => {
    const bad = ["a:b", "naïve.txt", ".gridx/job.log", "x".repeat(201), "q?", "tab\there", "semi;colon"];
    const j = judgeOutputs([file("good.txt"), ...bad.map((n) => file(n))], true, 1000);
    expect(names(j.keep)).toEqual(["good.txt"]);
    expect(j.refused).toEqual(bad);
    expect(j.over).toBeNull();
    expect(j.note).toContain('7 output file(s) not kept');
    expect(j.note).toContain('"a:b", "naïve.txt", ".gridx/job.log"');
    expect(j.note).toContain(`"${"x".repeat(100)}…"`);
    expect(j.note).toMatch(/and 2 more\]$/);
  });

  it("keeps the first 1000 files by name and says how many were left", () => {
    const all = Array.from({ length: 1500 }, (_, i) => file(`f${String(i).padStart(4, "0")}`, 2));
    const j = judgeOutputs(all, true, 1 << 20);
    expect(j.keep).toHaveLength(OUTPUT_LIMITS.maxFiles);
    expect(j.keep.at(-1)!.name).toBe("f0999");
    expect(j.left).toEqual({ files: 500, bytes: 1000 });
    expect(j.over).toMatch(/^500 file\(s\) \(1000 bytes\) in \/work\/output were left/);
  });

  it("keeps files by name while they fit the byte cap, file by file", () => {
    const j = judgeOutputs([file("a", 60), file("b", 50), file("c", 40)], true, 100);
    expect(names(j.keep)).toEqual(["a", "c"]);
    expect(j.left).toEqual({ files: 1, bytes: 50 });
    expect(j.over).toContain("1 file(s) (50 bytes)");
  });

  it("calls an output whose listing stopped at its bound too large", () => {
    const j = judgeOutputs([file("a")], false, 100);
    expect(names(j.keep)).toEqual(["a"]);
    expect(j.over).toContain(`more than ${OUTPUT_LIMITS.maxEntries} entries`);
  });
});

describe("listing and measuring an output folder", () => {
  it("lists regular files by name, in sub-folders too, skipping links", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "a", "b"), { recursive: true });
    writeFileSync(join(dir, "z"), Buffer.alloc(1000));
    writeFileSync(join(dir, "a", "b", "y"), Buffer.alloc(24));
    symlinkSync("/etc/passwd", join(dir, "link"));
    expect(await listFiles(dir, 100)).toEqual({ complete: true, files: [{ name: "a/b/y", path: join(dir, "a", "b", "y"), size: 24 }, { name: "z", path: join(dir, "z"), size: 1000 }] });
    expect(await folderBytes(dir)).toBe(1024);
    expect(await measureOutput(dir, 1024)).toBeNull();
    expect(await measureOutput(dir, 1023)).toBe("the job wrote more than 1023 bytes to /work/output");
  });

  it("stops walking 100,000 files at its bound, reading no more of them", async () => {
    const dir = tempDir();
    emptyFiles(dir, 100_000);
    let seen = 0;
    const walked = await walkFolder(dir, OUTPUT_LIMITS.maxEntries, () => void seen++);
    expect(walked).toEqual({ visited: OUTPUT_LIMITS.maxEntries, complete: false });
    expect(seen).toBe(OUTPUT_LIMITS.maxEntries);
    expect(await measureOutput(dir, 1 << 30)).toBe(`the job made more than ${OUTPUT_LIMITS.maxEntries} entries in /work/output`);
    const listed = await listFiles(dir, OUTPUT_LIMITS.maxEntries);
    expect([listed.files.length, listed.complete]).toEqual([OUTPUT_LIMITS.maxEntries, false]);
    expect(judgeOutputs(listed.files, listed.complete, 1 << 30).keep).toHaveLength(OUTPUT_LIMITS.maxFiles);
  });

  it("stops walking when told to, as measuring does at the byte cap", async () => {
    const dir = tempDir();
    emptyFiles(dir, 50);
    let seen = 0;
    expect(await walkFolder(dir, Infinity, () => ++seen < 3)).toEqual({ visited: 3, complete: false });
  });
});
