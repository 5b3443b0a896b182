import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DockerEngine } from "../../agent/src/docker/engine.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { folderBytes } from "../../agent/src/folder-bytes.ts";
import { DockerRunner } from "../../agent/src/runner/docker-runner.ts";
import { LABELS } from "../../agent/src/runner/sandbox.ts";
import { JobRequest } from "../../protocol/index.ts";

const docker = new DockerEngine();

function runner(name: string, stateDir = mkdtempSync(join(tmpdir(), "gridx-runner-")), python = "gridx/python:latest") {
  return new DockerRunner(docker, { stateDir, agentName: name, images: { python }, stopGraceS: 1, tmpfsMb: 16, outputCapBytes: 1 << 20, allowedImages: [] }, silentLogger);
}

const noHooks = { started() {}, output() {}, system() {}, congested: () => false };

describe("DockerRunner on the real engine", () => {
  it("names the runner images that are missing", async () => {
    expect(await runner("r1").missingImages()).toEqual([]);
    expect(await runner("r1", undefined, "gridx/not-built:never").missingImages()).toEqual(["gridx/not-built:never"]);
  });

  it("fails a job whose image is missing image_error, saying which", async () => {
    const spec = JobRequest.parse({ kind: "python", python: { script: "print(1)" } });
    const out = await runner("r2", undefined, "gridx/not-built:never").run({ jobId: "j_img", attempt: 1, spec, gpuIndices: [], inputs: [] }, noHooks, new AbortController().signal);
    expect(out).toMatchObject({ failure_reason: "image_error", message: expect.stringContaining("gridx/not-built:never") });
  });

  it("removes the containers and job folders a crashed agent of the same name left, and only those", async () => {
    const name = `leftover-${Date.now()}`;
    const mine = await docker.createContainer({ Image: "gridx/python:latest", Labels: { [LABELS.managed]: "true", [LABELS.agent]: name, [LABELS.jobId]: "j_old" } });
    const other = await docker.createContainer({ Image: "gridx/python:latest", Labels: { [LABELS.managed]: "true", [LABELS.agent]: `${name}-other` } });
    const stateDir = mkdtempSync(join(tmpdir(), "gridx-runner-"));
    mkdirSync(join(stateDir, "jobs", "j_old.1", "output"), { recursive: true });
    try {
      expect(await runner(name, stateDir).cleanupLeftovers()).toBe(1);
      await expect(docker.inspectContainer(mine)).rejects.toMatchObject({ status: 404, message: expect.stringMatching(/no such container/i) });
      expect((await docker.inspectContainer(other)).Id).toBe(other);
      expect(existsSync(join(stateDir, "jobs", "j_old.1"))).toBe(false);
    } finally {
      await docker.removeContainer(other);
      await docker.removeContainer(mine).catch(() => undefined);
    }
  });

  it("measures an output folder", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gridx-bytes-"));
    mkdirSync(join(dir, "a", "b"), { recursive: true });
    writeFileSync(join(dir, "x"), Buffer.alloc(1000));
    writeFileSync(join(dir, "a", "b", "y"), Buffer.alloc(24));
    expect(await folderBytes(dir)).toBe(1024);
  });
});
