import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildCgroupPath, buildConfinement, describeLimits, explainStepFailure, oversize, prepareBuildCgroup, removeBuildCgroup, type BuildCgroup, type BuildLimits } from "../../agent/src/repos/build-limits.ts";

const limits: BuildLimits = { cpus: 1.5, memoryMb: 512, pids: 256, timeoutMs: 90_000, maxImageBytes: 2 * 1024 ** 3 };
const confined: BuildCgroup = { ok: true, parent: "/gridx-build-x" };
const unconfined: BuildCgroup = { ok: false, why: "the Docker engine is on another machine" };

describe("build confinement (pure)", () => {
  it("gives every RUN step the memory without swap, the CPU quota, the network and the agent's cgroup", () => {
    expect(buildConfinement(limits, "none", confined)).toEqual({
      memoryBytes: 512 * 1024 * 1024,
      memswapBytes: 512 * 1024 * 1024,
      cpuQuotaUs: 150_000,
      cpuPeriodUs: 100_000,
      networkMode: "none",
      ulimits: [{ Name: "nofile", Soft: 4096, Hard: 4096 }],
      cgroupParent: "/gridx-build-x",
    });
    expect(buildConfinement(limits, "gridx-egress-1", unconfined)).not.toHaveProperty("cgroupParent");
  });

  it("says every limit in the build's first lines, and why there is no process limit when there is none", () => {
    expect(describeLimits(limits, confined)).toBe("[gridx: build limits: 1.5 CPUs, 512 MiB memory (no swap), 256 processes, 90 s, an image of at most 2.0 GiB; each build, and all of this agent's builds together]");
    expect(describeLimits(limits, unconfined)).toContain("no process limit (the Docker engine is on another machine)");
  });

  it("names the memory limit for a step killed by SIGKILL, and the process limit for a fork that failed", () => {
    const killed = explainStepFailure({ error: "The command '/bin/sh -c hog' returned a non-zero code: 137", code: 137, tail: ["Killed"] }, limits, confined);
    expect(killed).toBe("The command '/bin/sh -c hog' returned a non-zero code: 137; killed (SIGKILL): most likely a step went over the build memory limit of 512 MiB (--build-memory-mb); last output: Killed");
    const forks = explainStepFailure({ error: "The command '/bin/sh -c bomb' returned a non-zero code: 1", code: 1, tail: ["BlockingIOError: [Errno 11] Resource temporarily unavailable", "Traceback (most recent call last):"] }, limits, confined);
    expect(forks).toBe("The command '/bin/sh -c bomb' returned a non-zero code: 1; a step could not start more processes: the build process limit is 256 (--build-pids); output: BlockingIOError: [Errno 11] Resource temporarily unavailable");
    expect(explainStepFailure({ error: "returned a non-zero code: 3", code: 3, tail: [] }, limits, confined)).toBe("returned a non-zero code: 3");
  });

  it("keeps the explanation short enough for a job's failure message", () => {
    const long = explainStepFailure({ error: `The command '${"x".repeat(10_000)}' returned a non-zero code: 2`, code: 2, tail: ["y".repeat(10_000)] }, limits, confined);
    expect(long.length).toBeLessThan(2100);
  });

  it("fails an image over the size bound, naming the setting", () => {
    expect(oversize(limits.maxImageBytes, limits)).toBeNull();
    expect(oversize(3 * 1024 ** 3, limits)).toBe("the environment image is 3.0 GiB, over this agent's bound of 2.0 GiB (--build-max-gb); it was removed");
  });
});

describe("prepareBuildCgroup (files in a stand-in cgroup root)", () => {
  const host = (root: string, version: string, driver = "cgroupfs") => ({ info: { CgroupVersion: version, CgroupDriver: driver }, local: true, root });

  it("writes pids, memory and CPU limits under each v1 controller", async () => {
    const root = mkdtempSync(join(tmpdir(), "gridx-cg1-"));
    const got = await prepareBuildCgroup(host(root, "1"), "abc", limits);
    expect(got).toEqual({ ok: true, parent: buildCgroupPath("abc") });
    const read = (p: string) => readFileSync(join(root, p, "gridx-build-abc", p === "pids" ? "pids.max" : p === "memory" ? "memory.limit_in_bytes" : "cpu.cfs_quota_us"), "utf8");
    expect([read("pids"), read("memory"), read("cpu")]).toEqual(["256", String(512 * 1024 * 1024), "150000"]);
  });

  it("on v2, hands the controllers down and writes pids.max, memory.max, cpu.max and no swap where swap is accounted", async () => {
    const root = mkdtempSync(join(tmpdir(), "gridx-cg2-"));
    mkdirSync(join(root, "gridx-build-abc"));
    writeFileSync(join(root, "gridx-build-abc", "memory.swap.max"), "max");
    expect(await prepareBuildCgroup(host(root, "2"), "abc", limits)).toEqual({ ok: true, parent: "/gridx-build-abc" });
    const dir = join(root, "gridx-build-abc");
    expect(readFileSync(join(root, "cgroup.subtree_control"), "utf8")).toBe("+pids +memory +cpu");
    expect(["pids.max", "memory.max", "memory.swap.max", "cpu.max"].map((f) => readFileSync(join(dir, f), "utf8"))).toEqual(["256", String(512 * 1024 * 1024), "0", "150000 100000"]);
  });

  it("makes none, saying why, with the systemd driver, a remote engine, or files it may not write", async () => {
    const root = mkdtempSync(join(tmpdir(), "gridx-cg-"));
    expect(await prepareBuildCgroup(host(root, "2", "systemd"), "abc", limits)).toEqual({ ok: false, why: expect.stringContaining("systemd cgroup driver") });
    expect(await prepareBuildCgroup({ ...host(root, "1"), local: false }, "abc", limits)).toEqual({ ok: false, why: expect.stringContaining("another machine") });
    expect(await prepareBuildCgroup({ ...host(root, "1"), info: null }, "abc", limits)).toEqual({ ok: false, why: expect.stringContaining("did not say") });
    // A file where the controller's folder should be: no one, root included, can make the cgroup there.
    writeFileSync(join(root, "pids"), "");
    chmodSync(join(root, "pids"), 0o444);
    expect(await prepareBuildCgroup(host(root, "1"), "abc", limits)).toEqual({ ok: false, why: expect.stringMatching(/cannot write .*pids.max \(\w+\)/) });
  });

  it("removes the cgroup under every controller, the engine's own included, and leaves one still in use", async () => {
    const root = mkdtempSync(join(tmpdir(), "gridx-cg-rm-"));
    // Empty folders stand in for cgroups (whose files the kernel keeps), and a child for a build still running.
    for (const c of ["pids", "cpu", "blkio"]) mkdirSync(join(root, c, "gridx-build-abc"), { recursive: true });
    mkdirSync(join(root, "memory", "gridx-build-abc", "0123abcd"), { recursive: true });
    await removeBuildCgroup({ ok: true, parent: "/gridx-build-abc" }, root);
    expect(["pids", "cpu", "blkio", "memory"].map((c) => existsSync(join(root, c, "gridx-build-abc")))).toEqual([false, false, false, true]);
  });
});
