import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { gpuRuntimeProblem, prestartableRuntimes, runscArgsMissing, runtimeMissing, runtimesOf } from "../../agent/src/caps.ts";
import { DockerEngine } from "../../agent/src/docker/engine.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { DockerRunner } from "../../agent/src/runner/docker-runner.ts";
import { containerOptions, type SandboxInput } from "../../agent/src/runner/sandbox.ts";
import { JOB_SECCOMP } from "../../agent/src/runner/seccomp.ts";
import { AttemptSandbox, JobRequest } from "../../protocol/index.ts";
import { hungEngine, type HungEngine } from "../support/hung-engine.ts";

const runsc = (runtimeArgs?: string[]) => ({ runc: { path: "runc" }, runsc: { path: "/usr/bin/runsc", ...(runtimeArgs ? { runtimeArgs } : {}) } });

describe("runtimes", () => {
  it("are runc, and gVisor where dockerd registered runsc", () => {
    expect(runtimesOf(undefined)).toEqual(["runc"]);
    expect(runtimesOf({ runc: { path: "runc" }, nvidia: { path: "nvidia-container-runtime" } })).toEqual(["runc"]);
    expect(runtimesOf(runsc())).toEqual(["runc", "gvisor"]);
  });

  it("a job asks for, and lacks here, are named with what the engine has", () => {
    expect(runtimeMissing("runc", ["runc"])).toBeNull();
    expect(runtimeMissing("gvisor", ["runc", "gvisor"])).toBeNull();
    expect(runtimeMissing("gvisor", ["runc"])).toBe(`runtime "gvisor" (runsc) is not registered with this machine's Docker engine; it has runc`);
  });

  it("gVisor gets the job seccomp profile and prestarted sandboxes only with the runsc flags for them", () => {
    expect(runscArgsMissing(undefined)).toEqual([]);
    expect(runscArgsMissing({ runc: { path: "runc" } })).toEqual([]);
    expect(runscArgsMissing(runsc())).toEqual(["--oci-seccomp", "--host-fifo=open"]);
    expect(runscArgsMissing(runsc(["--network=none", "-oci-seccomp"]))).toEqual(["--host-fifo=open"]);
    expect(runscArgsMissing(runsc(["--network=none", "--oci-seccomp", "--host-fifo=open"]))).toEqual([]);
    expect(prestartableRuntimes(runsc(["--oci-seccomp"]))).toEqual(["runc"]);
    expect(prestartableRuntimes(runsc(["--host-fifo=open"]))).toEqual(["runc", "gvisor"]);
    expect(prestartableRuntimes(undefined)).toEqual(["runc"]);
  });

  it("take GPU jobs under gVisor only where runsc has nvproxy", () => {
    expect(gpuRuntimeProblem("runc", runsc())).toBeNull();
    expect(gpuRuntimeProblem("gvisor", runsc(["--network=none", "--nvproxy"]))).toBeNull();
    expect(gpuRuntimeProblem("gvisor", runsc(["-nvproxy=true"]))).toBeNull();
    expect(gpuRuntimeProblem("gvisor", runsc(["--network=none"]))).toMatch(/^GPU jobs cannot run under gVisor here: runsc is not registered with --nvproxy/);
  });

  it("are the container's, by the name dockerd knows them under", () => {
    const input: SandboxInput = { name: "n", image: "i", argv: null, env: {}, limits: { timeout_s: 1, memory_mb: 16, cpus: 1, pids: 16 }, gpuIndices: [], inputDir: "/i", outputDir: "/o", codeDir: null, tmpfsMb: 1, labels: {}, runtime: "gvisor" };
    const gvisor = containerOptions(input).HostConfig!;
    const runc = containerOptions({ ...input, runtime: "runc" }).HostConfig!;
    expect([gvisor.Runtime, runc.Runtime]).toEqual(["runsc", "runc"]);
    // Nothing else differs but the profile's clone3 (see forGvisor): gVisor is on top of the same lock-down, not instead of it.
    expect(gvisor.SecurityOpt).toEqual(["no-new-privileges:true", JOB_SECCOMP.gvisor]);
    expect({ ...gvisor, Runtime: "runc", SecurityOpt: runc.SecurityOpt }).toEqual(runc);
  });
});

describe("a job asking for a runtime the engine lacks", () => {
  let engine: HungEngine;
  afterEach(() => engine.close());

  it("fails input_error naming it and what the engine has, before anything is made for it", async () => {
    // This machine's engine has runsc; one without it is stood in for: it tells its version and runtimes, and nothing else.
    engine = await hungEngine((path, res) => {
      if (path === "/version") res.end('{"ApiVersion":"1.41"}');
      else if (path === "/info") res.end('{"Runtimes":{"runc":{"path":"runc"}}}');
      else return false;
      return true;
    });
    const stateDir = mkdtempSync(join(tmpdir(), "gridx-runtimes-"));
    const r = new DockerRunner(new DockerEngine({ socketPath: engine.socketPath }, { callTimeoutMs: 1000 }), { stateDir, agentName: "r", instance: "0".repeat(32), images: { python: "gridx/python:latest" }, stopGraceS: 1, tmpfsMb: 16, outputCapBytes: 1 << 20, allowedImages: [] }, silentLogger);
    const spec = JobRequest.parse({ kind: "python", python: { script: "print(1)" } });
    const hooks = { started() {}, output() {}, system() {}, congested: () => false };
    const out = await r.run({ jobId: "j_rt", attempt: 1, spec, gpuIndices: [], inputs: [], sandbox: AttemptSandbox.parse({ runtime: "gvisor" }) }, hooks, new AbortController().signal);
    expect(out).toEqual({ exit_code: null, failure_reason: "input_error", message: `runtime "gvisor" (runsc) is not registered with this machine's Docker engine; it has runc`, resolved: undefined });
    expect(new Set(engine.seen)).toEqual(new Set(["/version", "/info"]));
  });
});
