import { AttemptSandbox } from "../../protocol/index.ts";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DockerEngine, DockerTimeoutError } from "../../agent/src/docker/engine.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { folderBytes } from "../../agent/src/folder-bytes.ts";
import { DockerRunner, type Transfers } from "../../agent/src/runner/docker-runner.ts";
import { OUTPUT_LIMITS } from "../../agent/src/runner/output-rules.ts";
import { recorder } from "../support/run-hooks.ts";
import { LABELS } from "../../agent/src/runner/sandbox.ts";
import { InputCache } from "../../agent/src/transfer/input-cache.ts";
import type { ArtifactApi } from "../../agent/src/transfer/uploader.ts";
import { JobRequest } from "../../protocol/index.ts";
import { hungEngine, type HungEngine } from "../support/hung-engine.ts";
import { pollUntil } from "../helpers/poll.ts";

const docker = new DockerEngine();
const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));
const newInstance = () => randomBytes(16).toString("hex");

let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

interface RunnerSetup {
  name?: string;
  stateDir?: string;
  python?: string;
  instance?: string;
  engine?: DockerEngine;
  transfers?: Transfers;
}

function runner({ name = "r", stateDir = tempDir("gridx-runner-"), python = "gridx/python:latest", instance = newInstance(), engine = docker, transfers }: RunnerSetup = {}) {
  return new DockerRunner(engine, { stateDir, agentName: name, instance, images: { python }, stopGraceS: 1, tmpfsMb: 16, outputCapBytes: 1 << 20, allowedImages: [], transfers }, silentLogger);
}

const noHooks = { started() {}, output() {}, system() {}, congested: () => false };

const python = (script: string) => JobRequest.parse({ kind: "python", python: { script } });
const request = (jobId: string, script: string) => ({ jobId, attempt: 1, spec: python(script), gpuIndices: [], inputs: [], sandbox: AttemptSandbox.parse({}) });

/** An artifact store stand-in: presigned PUTs to a local server, and the prepare and complete calls as the agent made them. */
async function artifactStore() {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.end());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanup.push(() => new Promise((r) => server.close(r)));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const prepared: string[][] = [];
  const completed: string[] = [];
  const api: ArtifactApi = {
    prepare: async (files) => {
      prepared.push(files.map((f) => f.name));
      return files.map((f) => ({ name: f.name, upload: { method: "PUT" as const, url: `${base}/${encodeURIComponent(f.name)}`, expires_at: "" }, upload_id: null }));
    },
    complete: async (artifacts) => void completed.push(...artifacts.map((a) => a.name)),
  };
  const transfers: Transfers = { cache: new InputCache(tempDir("gridx-cache-"), 1 << 20, {}), artifacts: () => api, http: {}, logCapBytes: 1 << 20 };
  return { transfers, prepared, completed };
}

describe("DockerRunner on the real engine", () => {
  it("names the runner images that are missing", async () => {
    expect(await runner().missingImages()).toEqual([]);
    expect(await runner({ python: "gridx/not-built:never" }).missingImages()).toEqual(["gridx/not-built:never"]);
  });

  it("fails a job whose image is missing image_error, saying which", async () => {
    const out = await runner({ python: "gridx/not-built:never" }).run(request("j_img", "print(1)"), noHooks, new AbortController().signal);
    expect(out).toMatchObject({ failure_reason: "image_error", message: expect.stringContaining("gridx/not-built:never") });
  });

  it("removes the containers and job folders its own crashed run left, and never another agent's of the same name", async () => {
    const name = `shared-name-${Date.now()}`;
    const stateDir = tempDir("gridx-runner-");
    const [firstInstance, secondInstance] = [newInstance(), newInstance()];
    const first = runner({ name, stateDir, instance: firstInstance });
    const second = runner({ name, stateDir, instance: secondInstance });
    cleanup.push(() => first.cleanupLeftovers());
    await first.cleanupLeftovers();
    const { seen, hooks } = recorder();
    const stop = new AbortController();
    const running = first.run(request("j_keep", "import time\nprint('up', flush=True)\ntime.sleep(60)"), hooks, stop.signal);
    cleanup.push(() => {
      stop.abort("user");
      return running;
    });
    await pollUntil(async () => seen.stdout, (s) => s === "up\n", { timeoutMs: 20_000, intervalMs: 20, what: "the first agent's job running" });

    const left = await docker.createContainer({ Image: "gridx/python:latest", Labels: { [LABELS.managed]: "true", [LABELS.agent]: name, [LABELS.instance]: secondInstance } });
    cleanup.push(() => docker.removeContainer(left).catch(() => undefined));
    mkdirSync(join(second.jobsDir(), "j_old.1", "output"), { recursive: true });

    expect(await second.cleanupLeftovers()).toBe(1);
    await expect(docker.inspectContainer(left)).rejects.toMatchObject({ status: 404 });
    expect(existsSync(join(second.jobsDir(), "j_old.1"))).toBe(false);
    expect((await docker.listContainers([`${LABELS.instance}=${firstInstance}`])).map((c) => c.State)).toEqual(["running"]);
    expect(existsSync(join(first.jobsDir(), "j_keep.1", "output"))).toBe(true);

    stop.abort("user");
    expect(await running).toMatchObject({ failure_reason: "canceled_by_worker", message: "stopped: user" });
  });

  it("keeps the first 1000 output files by name and the job log, and fails the job output_too_large saying how many were left", async () => {
    const store = await artifactStore();
    const { seen, hooks } = recorder();
    const script = "for i in range(1500):\n    open(f'/work/output/f{i:04d}', 'w').write('x')\nprint('done')";
    const out = await runner({ transfers: store.transfers }).run(request("j_many", script), hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: 0, failure_reason: "output_too_large", message: expect.stringMatching(/^500 file\(s\) \(500 bytes\) in \/work\/output were left/) });
    expect(store.prepared.map((p) => p.length)).toEqual([OUTPUT_LIMITS.maxFiles, 1]);
    expect(store.prepared[0]!.at(-1)).toBe("f0999");
    expect(store.completed).toHaveLength(OUTPUT_LIMITS.maxFiles + 1);
    expect(store.completed.at(-1)).toBe(".gridx/job.log");
    expect(seen.stdout).toBe("done\n");
  });

  it("notes output files with names it cannot keep, keeps the rest and the log, and the job's outcome stands", async () => {
    const store = await artifactStore();
    const { seen, hooks } = recorder();
    const script = "import os\nos.makedirs('/work/output/.gridx')\nfor n in ['ok.txt', 'bad:name', 'ça.txt', '.gridx/job.log']:\n    open('/work/output/' + n, 'w').write(n)";
    const out = await runner({ transfers: store.transfers }).run(request("j_names", script), hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: 0, failure_reason: null, message: null });
    expect(store.completed).toEqual(["ok.txt", ".gridx/job.log"]);
    expect(seen.system).toContainEqual(expect.stringMatching(/^\[gridx: 3 output file\(s\) not kept: .*"\.gridx\/job\.log", "bad:name", "ça\.txt"\]$/));
  });

  it("stops a job that fills /work/output with more entries than it may look at, and keeps its log", async () => {
    const store = await artifactStore();
    const script = `import time\nfor i in range(${OUTPUT_LIMITS.maxEntries + 50}):\n    open(f'/work/output/f{i}', 'w').close()\ntime.sleep(60)`;
    const out = await runner({ transfers: store.transfers }).run(request("j_flood", script), noHooks, new AbortController().signal);
    expect(out).toMatchObject({ failure_reason: "output_too_large", message: expect.stringContaining(`more than ${OUTPUT_LIMITS.maxEntries} entries`) });
    expect(store.completed).toContain(".gridx/job.log");
  });

  it("measures an output folder", async () => {
    const dir = tempDir("gridx-bytes-");
    mkdirSync(join(dir, "a", "b"), { recursive: true });
    writeFileSync(join(dir, "x"), Buffer.alloc(1000));
    writeFileSync(join(dir, "a", "b", "y"), Buffer.alloc(24));
    expect(await folderBytes(dir)).toBe(1024);
  });
});

describe("DockerRunner against an engine that does not answer", () => {
  let engine: HungEngine;
  afterEach(() => engine.close());

  it("fails the job internal, naming the call, not image_error", async () => {
    // It tells its version and info and knows the image, then hangs: the create never comes back.
    engine = await hungEngine((path, res) => {
      if (path === "/version") res.end('{"ApiVersion":"1.41"}');
      else if (path === "/info" || path.startsWith("/images/")) res.end("{}");
      else return false;
      return true;
    });
    const r = runner({ engine: new DockerEngine({ socketPath: engine.socketPath }, { callTimeoutMs: 100 }) });
    const out = await r.run(request("j_hung", "print(1)"), noHooks, new AbortController().signal);
    expect(out).toEqual({ exit_code: null, failure_reason: "internal", message: "the Docker engine did not answer POST /containers/create within 0.1s", resolved: undefined });
    await expect(r.cleanupLeftovers()).rejects.toEqual(new DockerTimeoutError("GET /containers/json", 100));
  });

  it("does not hang the agent's start: cleanup and the image check fail with the timeout", async () => {
    engine = await hungEngine();
    const r = runner({ engine: new DockerEngine({ socketPath: engine.socketPath }, { callTimeoutMs: 100 }) });
    const timedOut = new DockerTimeoutError("GET /version", 100);
    await expect(r.cleanupLeftovers()).rejects.toEqual(timedOut);
    await expect(r.missingImages()).rejects.toEqual(timedOut);
    expect(await r.run(request("j_hung", "print(1)"), noHooks, new AbortController().signal)).toMatchObject({ failure_reason: "internal", message: timedOut.message });
  });
});
