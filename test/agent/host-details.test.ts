import { spawnSync } from "node:child_process";
import { mkdtempSync, rmdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DockerEngine } from "../../agent/src/docker/engine.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { DockerRunner, type Transfers } from "../../agent/src/runner/docker-runner.ts";
import { recorder } from "../support/run-hooks.ts";
import { AttemptSandbox, JobRequest, type InputDownload } from "../../protocol/index.ts";
import { localStore } from "../support/local-store.ts";

const docker = new DockerEngine();
const INSTANCE = "cd".repeat(16);

let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

function runner(stateDir: string, transfers?: Transfers) {
  return new DockerRunner(docker, { stateDir, agentName: "host-details", instance: INSTANCE, images: { python: "gridx/python:latest" }, stopGraceS: 1, tmpfsMb: 16, outputCapBytes: 1 << 20, allowedImages: [], transfers }, silentLogger);
}

function request(jobId: string, script: string, inputs: InputDownload[] = [], sandbox = AttemptSandbox.parse({})) {
  const spec = JobRequest.parse({ kind: "python", python: { script }, inputs: inputs.map(({ dataset, path }) => ({ dataset, path })) });
  return { jobId, attempt: 1, spec, gpuIndices: [], inputs, sandbox };
}

/** A fresh folder on a tmpfs of its own, unmounted after the test: a state folder that is its filesystem's root. */
function ownFilesystem(): string {
  const dir = mkdtempSync(join(tmpdir(), "gridx-ownfs-"));
  const mount = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64m,mode=0755", "gridx-state", dir], { encoding: "utf8" });
  if (mount.status !== 0) throw new Error(`this test mounts a tmpfs, which needs root: ${mount.error?.message ?? mount.stderr.trim()}`);
  cleanup.push(() => {
    spawnSync("umount", [dir]);
    rmdirSync(dir);
  });
  return dir;
}

/** /proc/self/mountinfo as mount point → the root of the mount in its filesystem, for each line. */
function mountRoots(mountinfo: string): Map<string, string> {
  const roots = new Map<string, string>();
  for (const line of mountinfo.trim().split("\n")) {
    const [, , , root, point] = line.split(" ");
    roots.set(point!, root!);
  }
  return roots;
}

const PRINT_MOUNTINFO = "print(open('/proc/self/mountinfo').read(), end='')";

describe("what a job and its submitter see of the agent's host", () => {
  it("an input that cannot be put in place fails naming /work/input, not the agent's state folder", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "gridx-hostpaths-"));
    const store = await localStore(join(stateDir, "cache"));
    cleanup.push(() => store.close());
    // "a" is a file by the time "a/b" wants it to be a folder.
    const inputs = [store.input("d1", "a", "one"), store.input("d2", "a/b", "two")];
    const { seen, hooks } = recorder();
    const out = await runner(stateDir, store.transfers).run(request("j_clash", "print(1)", inputs), hooks, new AbortController().signal);
    expect(out).toEqual({ exit_code: null, failure_reason: "input_error", message: "EEXIST: file already exists, mkdir '/work/input/a'", resolved: undefined });
    expect(seen.system).toEqual(["[gridx: input a (dataset d1, 3 bytes) downloaded]"]);
  });

  it("under runc, a state folder on a filesystem of its own shows in /proc/self/mountinfo only by its own paths", async () => {
    const stateDir = ownFilesystem();
    const { seen, hooks } = recorder();
    const out = await runner(stateDir).run(request("j_mounts", PRINT_MOUNTINFO), hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: 0 });
    expect(seen.stdout).not.toContain(stateDir);
    const roots = mountRoots(seen.stdout);
    expect(roots.get("/work/input")).toBe(`/jobs/${INSTANCE}/j_mounts.1/input`);
    expect(roots.get("/work/output")).toBe(`/jobs/${INSTANCE}/j_mounts.1/output`);
  });

  it("under gVisor, /proc/self/mountinfo shows no host path at all, wherever the state folder is", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "gridx-hostpaths-"));
    const { seen, hooks } = recorder();
    const out = await runner(stateDir).run(request("j_mounts_gvisor", PRINT_MOUNTINFO, [], AttemptSandbox.parse({ runtime: "gvisor" })), hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: 0 });
    // gVisor's own mount table: every mount is its filesystem's root, served through its gofer.
    const roots = mountRoots(seen.stdout);
    expect(roots.get("/work/input")).toBe("/");
    expect(roots.get("/work/output")).toBe("/");
    expect(seen.stdout).not.toContain(stateDir);
    expect(seen.stdout).not.toContain("/var/lib/docker");
  });
});
