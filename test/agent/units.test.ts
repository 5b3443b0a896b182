import { describe, expect, it } from "vitest";
import { agentInstance } from "../../agent/src/identity.ts";
import { backoffDelay } from "../../agent/src/backoff.ts";
import { parseNvidiaSmi } from "../../agent/src/caps.ts";
import { loadConfig } from "../../agent/src/config.ts";
import { takesPrestarted } from "../../agent/src/runner/prestart.ts";
import { containerOptions, JOB_USER, limitsUpdate, withinReservation } from "../../agent/src/runner/sandbox.ts";
import { JOB_SECCOMP } from "../../agent/src/runner/seccomp.ts";
import { JobRequest } from "../../protocol/index.ts";

describe("backoffDelay", () => {
  it("draws from [0, min(max, base·2^n)] (full jitter)", () => {
    const opts = { baseMs: 100, maxMs: 1000 };
    expect(backoffDelay(0, opts, () => 0.999)).toBe(99);
    expect(backoffDelay(3, opts, () => 0.5)).toBe(400);
    expect(backoffDelay(10, opts, () => 0.999)).toBe(999);
    expect(backoffDelay(10, opts, () => 0)).toBe(0);
    expect(backoffDelay(1e6, opts, () => 0.5)).toBe(500);
  });
});

describe("loadConfig", () => {
  const env = { GRIDX_URL: "http://127.0.0.1:8787", GRIDX_AGENT_TOKEN: "gxa_0123456789abcdef" };

  it("reads the environment and applies defaults", () => {
    const r = loadConfig([], { ...env, GRIDX_AGENT_NAME: "box" });
    expect(r).toMatchObject({ ok: true, config: { url: env.GRIDX_URL, token: env.GRIDX_AGENT_TOKEN, name: "box", slots: 1, stateDir: "/var/lib/gridx", labels: {} } });
  });

  it("prestarts one sandbox unless told otherwise; 0 turns it off", () => {
    expect(loadConfig([], env)).toMatchObject({ ok: true, config: { prestart: 1 } });
    expect(loadConfig([], { ...env, GRIDX_PRESTART: "0" })).toMatchObject({ ok: true, config: { prestart: 0 } });
    expect(loadConfig(["--prestart", "3"], { ...env, GRIDX_PRESTART: "0" })).toMatchObject({ ok: true, config: { prestart: 3 } });
  });

  it("gives each Docker Engine call 30 s unless told otherwise", () => {
    expect(loadConfig([], env)).toMatchObject({ ok: true, config: { dockerTimeoutS: 30 } });
    expect(loadConfig(["--docker-timeout", "5"], { ...env, GRIDX_DOCKER_TIMEOUT_S: "9" })).toMatchObject({ ok: true, config: { dockerTimeoutS: 5 } });
    expect(loadConfig([], { ...env, GRIDX_DOCKER_TIMEOUT_S: "0" })).toMatchObject({ ok: false, error: expect.stringMatching(/^dockerTimeoutS/) });
  });

  it("lets flags win over the environment", () => {
    const r = loadConfig(["--name", "flag", "--slots", "4", "--label", "zone=lab", "--label", "gpu=t4"], { ...env, GRIDX_AGENT_NAME: "env", GRIDX_SLOTS: "2" });
    expect(r).toMatchObject({ ok: true, config: { name: "flag", slots: 4, labels: { zone: "lab", gpu: "t4" } } });
  });

  it("says what is wrong", () => {
    expect(loadConfig([], {})).toMatchObject({ ok: false, error: expect.stringMatching(/^url:/) });
    expect(loadConfig([], { GRIDX_URL: env.GRIDX_URL })).toMatchObject({ ok: false, error: expect.stringMatching(/token/) });
    expect(loadConfig(["--slots", "0"], env)).toMatchObject({ ok: false, error: expect.stringMatching(/^slots/) });
    expect(loadConfig(["--label", "novalue"], env)).toMatchObject({ ok: false, error: expect.stringMatching(/key=value/) });
    expect(loadConfig(["--bogus"], env)).toMatchObject({ ok: false, error: expect.stringMatching(/bogus/) });
    expect(loadConfig(["--prestart=-1"], env)).toMatchObject({ ok: false, error: expect.stringMatching(/^prestart/) });
  });
});

describe("parseNvidiaSmi", () => {
  it("reads index, model and memory", () => {
    expect(parseNvidiaSmi("0, NVIDIA H100 80GB HBM3, 81559\n1, NVIDIA H100 80GB HBM3, 81559\n")).toEqual([
      { index: 0, model: "NVIDIA H100 80GB HBM3", memory_mb: 81559 },
      { index: 1, model: "NVIDIA H100 80GB HBM3", memory_mb: 81559 },
    ]);
    expect(parseNvidiaSmi("")).toEqual([]);
  });
});

describe("containerOptions", () => {
  const opts = containerOptions({
    name: "gridx-j-1",
    image: "gridx/python:latest",
    argv: null,
    env: { A: "1" },
    limits: { timeout_s: 10, memory_mb: 256, cpus: 1.5, pids: 64 },
    gpuIndices: [],
    inputDir: "/s/jobs/j.1/input",
    outputDir: "/s/jobs/j.1/output",
    codeDir: null,
    tmpfsMb: 64,
    labels: { "gridx.job_id": "j" },
    runtime: "runc",
  });

  it("locks the container down as the contract says", () => {
    const h = opts.HostConfig!;
    expect(opts.User).toBe(JOB_USER);
    expect(JOB_USER.startsWith("0")).toBe(false);
    expect(h.ReadonlyRootfs).toBe(true);
    expect(h.CapDrop).toEqual(["ALL"]);
    expect(h.SecurityOpt).toEqual(["no-new-privileges:true", JOB_SECCOMP.runc]);
    expect(h.Runtime).toBe("runc");
    expect(h.NetworkMode).toBe("none");
    expect(h.PidsLimit).toBe(64);
    expect(h.NanoCpus).toBe(1.5e9);
    expect(h.Memory).toBe(256 * 1024 * 1024);
    expect(h.MemorySwap).toBe(h.Memory);
    expect(h.Privileged).toBe(false);
    expect(h.Init).toBe(true);
    expect(h.Tmpfs).toEqual({ "/tmp": "rw,noexec,nosuid,nodev,size=64m" });
    expect(h.Binds).toEqual(["/s/jobs/j.1/input:/work/input:ro", "/s/jobs/j.1/output:/work/output:rw"]);
    expect(JSON.stringify(opts)).not.toContain("docker.sock");
    expect(h.DeviceRequests).toEqual([]);
  });

  it("requests only the assigned GPUs", () => {
    const gpu = containerOptions({ ...{ name: "n", image: "i", argv: ["nvidia-smi"], env: {}, limits: { timeout_s: 1, memory_mb: 16, cpus: 1, pids: 16 }, inputDir: "/i", outputDir: "/o", codeDir: null, tmpfsMb: 1, labels: {}, runtime: "runc" }, gpuIndices: [2, 3] });
    expect(gpu.HostConfig!.DeviceRequests).toEqual([{ Driver: "nvidia", DeviceIDs: ["2", "3"], Capabilities: [["gpu"]] }]);
    expect(gpu.Entrypoint).toEqual(["nvidia-smi"]);
    expect(gpu.Cmd).toEqual([]);
  });

  it("mounts a repo job's code read-only and runs there", () => {
    const repo = containerOptions({ name: "n", image: "gridx-env:abc", argv: ["python3", "main.py"], env: {}, limits: { timeout_s: 1, memory_mb: 16, cpus: 1, pids: 16 }, gpuIndices: [], inputDir: "/i", outputDir: "/o", codeDir: "/c", tmpfsMb: 1, labels: {}, runtime: "runc" });
    expect(repo.HostConfig!.Binds).toEqual(["/i:/work/input:ro", "/o:/work/output:rw", "/c:/work/code:ro"]);
    expect(repo.WorkingDir).toBe("/work/code");
    expect(opts.WorkingDir).toBe("/work/output");
    expect(repo.HostConfig!.NetworkMode).toBe("none");
  });
});

describe("takesPrestarted", () => {
  const python = JobRequest.parse({ kind: "python", python: { script: "print(1)" } });

  it("gives a waiting sandbox to python jobs that asked for no GPUs, and only to them", () => {
    expect(takesPrestarted({ spec: python, gpuIndices: [] })).toBe(true);
    expect(takesPrestarted({ spec: python, gpuIndices: [0] })).toBe(false);
    expect(takesPrestarted({ spec: JobRequest.parse({ kind: "command", command: { image: "gridx/python:latest", argv: ["true"] } }), gpuIndices: [] })).toBe(false);
    const repo = { code_repo_url: "https://h/code.git", code_commit_id: "main", env_repo_url: "https://h/env.git", env_commit_id: "v1" };
    expect(takesPrestarted({ spec: JobRequest.parse({ kind: "repo", repo, command: ["python3", "main.py"] }), gpuIndices: [] })).toBe(false);
  });
});

describe("withinReservation", () => {
  const limits = { timeout_s: 60, memory_mb: 20000, cpus: 2, pids: 65536 };
  it("holds a container to what its worker reserved, never above", () => {
    expect(withinReservation({ limits, requirements: { gpus: 0, cpus: 0.05, memory_mb: 16, labels: {} } })).toEqual({ timeout_s: 60, memory_mb: 16, cpus: 0.05, pids: 65536 });
    expect(withinReservation({ limits, requirements: { gpus: 0, cpus: 4, memory_mb: 32000, labels: {} } })).toEqual(limits);
  });
  it("changes nothing for a spec made today: submit raised its reservation to its limits", () => {
    const spec = JobRequest.parse({ kind: "python", python: { script: "x" }, requirements: { memory_mb: 16, cpus: 0.05 }, limits });
    expect(withinReservation(spec)).toEqual(limits);
  });
});

describe("limitsUpdate", () => {
  const defaults = { timeout_s: 3600, memory_mb: 512, cpus: 1, pids: 256 };

  it("changes nothing for a job with the limits the container has, whatever its timeout", () => {
    expect(limitsUpdate(defaults, { ...defaults })).toBeNull();
    expect(limitsUpdate(defaults, { ...defaults, timeout_s: 5 })).toBeNull();
  });

  it("sets memory (with no swap), CPUs and pids as a new container would get them", () => {
    const wanted = { ...defaults, memory_mb: 64, cpus: 0.5 };
    const update = limitsUpdate(defaults, wanted);
    expect(update).toEqual({ Memory: 64 * 1024 * 1024, MemorySwap: 64 * 1024 * 1024, NanoCpus: 0.5e9, PidsLimit: 256 });
    const fresh = containerOptions({ name: "n", image: "i", argv: null, env: {}, limits: wanted, gpuIndices: [], inputDir: "/i", outputDir: "/o", codeDir: null, tmpfsMb: 1, labels: {}, runtime: "runc" }).HostConfig!;
    expect(update).toEqual({ Memory: fresh.Memory, MemorySwap: fresh.MemorySwap, NanoCpus: fresh.NanoCpus, PidsLimit: fresh.PidsLimit });
    expect(limitsUpdate(defaults, { ...defaults, pids: 64 })).toMatchObject({ PidsLimit: 64 });
  });
});

describe("agentInstance", () => {
  it("is stable for one installation, and differs for another name, token or control plane", () => {
    const id = agentInstance("https://grid.example/", "gxa_t", "lab-1");
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(agentInstance("https://grid.example", "gxa_t", "lab-1")).toBe(id);
    // Two workers on one token (one Docker host, say) are two installations.
    expect(agentInstance("https://grid.example", "gxa_t", "lab-2")).not.toBe(id);
    expect(agentInstance("https://grid.example", "gxa_u", "lab-1")).not.toBe(id);
    expect(agentInstance("https://other.example", "gxa_t", "lab-1")).not.toBe(id);
  });
});
