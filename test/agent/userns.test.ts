import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../../agent/src/docker/engine.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { DockerRunner } from "../../agent/src/runner/docker-runner.ts";
import { jobUserOnHost } from "../../agent/src/runner/job-folder.ts";
import { recorder } from "../support/run-hooks.ts";
import { LABELS } from "../../agent/src/runner/sandbox.ts";
import { Warden } from "../../agent/src/runner/warden.ts";
import { AttemptSandbox, JobRequest } from "../../protocol/index.ts";
import { pollUntil } from "../helpers/poll.ts";
import { localStore, type LocalStore } from "../support/local-store.ts";

const IMAGE = "gridx/python:latest";
/** The test's folder, a tmpfs: the runner image unpacked (about 170 MB) and the jobs' folders. */
const TMPFS_MB = 1024;

function run(command: string, args: string[]) {
  const r = spawnSync(command, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${r.error?.message ?? r.stderr.trim()}`);
}

/**
 * A second dockerd, with --userns-remap=default, beside the machine's own: its socket, data,
 * exec root and pidfile are in `root`, its default bridge is one of its own, and it has no
 * iptables rules to touch. (With `--bridge=none` a dockerd deletes docker0 at start, the
 * machine's own dockerd's bridge, which every later container on it then fails to join.)
 */
interface RemappedDockerd {
  root: string;
  bridge: string;
  child: ChildProcess;
  engine: DockerEngine;
}

async function startRemappedDockerd(): Promise<RemappedDockerd> {
  if (process.getuid?.() !== 0) throw new Error("the userns-remap test starts a dockerd of its own, which needs root; run it as root (CI does)");
  const root = mkdtempSync(join(tmpdir(), "gridx-userns-"));
  // Its own filesystem, so that its data root (an image unpacked) goes in one umount, not a long rm.
  // 0711: the remapped root must pass through to its data root, and to the job folders it bind-mounts.
  run("mount", ["-t", "tmpfs", "-o", `size=${TMPFS_MB}m,mode=0711`, "gridx-userns", root]);
  const socket = join(root, "docker.sock");
  const log = join(root, "dockerd.log");
  for (const dir of ["data", "exec"]) mkdirSync(join(root, dir));
  // Its own settings, not the machine's daemon.json: that may name hosts, a data root or runtimes.
  writeFileSync(join(root, "daemon.json"), "{}");
  const bridge = `gxuns${process.pid % 100000}`;
  run("ip", ["link", "add", bridge, "type", "bridge"]);
  run("ip", ["addr", "add", "172.31.254.1/24", "dev", bridge]);
  const args = ["--config-file", join(root, "daemon.json"), "--userns-remap=default", `--bridge=${bridge}`, "--iptables=false", "--ip6tables=false", "--ip-masq=false"];
  args.push("--host", `unix://${socket}`, "--data-root", join(root, "data"), "--exec-root", join(root, "exec"), "--pidfile", join(root, "docker.pid"));
  const out = openSync(log, "a");
  const child = spawn("dockerd", args, { stdio: ["ignore", out, out] });
  // Only the daemon's copy stays open: the tmpfs must unmount after it.
  closeSync(out);
  let ended: Error | null = null;
  child.on("error", (err) => (ended = new Error(`dockerd could not be started (is docker.io installed, dockerd on PATH?): ${err.message}`)));
  child.on("exit", (code, signal) => (ended ??= new Error(`dockerd exited (${code ?? signal}); its log ends:\n${readFileSync(log, "utf8").slice(-2000)}`)));
  const daemon = { root, bridge, child, engine: new DockerEngine({ socketPath: socket }) };
  try {
    const state = await pollUntil(async () => ended ?? (await daemon.engine.ping().then(() => "up", () => null)), (s) => s !== null, { timeoutMs: 30_000, intervalMs: 50, what: "the userns-remap dockerd answering" });
    if (state instanceof Error) throw state;
    return daemon;
  } catch (err) {
    await stopRemappedDockerd(daemon);
    throw err;
  }
}

/** Stops the daemon by its PID and removes its folders (the tmpfs), its remapped data root with them. */
async function stopRemappedDockerd(d: RemappedDockerd): Promise<void> {
  if (d.child.pid !== undefined && d.child.exitCode === null && d.child.signalCode === null) {
    const exited = once(d.child, "exit");
    process.kill(d.child.pid, "SIGTERM");
    const killer = setTimeout(() => d.child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(killer);
  }
  run("umount", ["--recursive", d.root]);
  rmdirSync(d.root);
  run("ip", ["link", "del", d.bridge]);
}

/** Copies the runner image from the machine's engine into `socket`'s: only that image, as one stream. */
async function loadImage(socket: string): Promise<void> {
  const copy = spawn("bash", ["-o", "pipefail", "-c", `docker save ${IMAGE} | docker -H unix://${socket} load --quiet`], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  copy.stderr.on("data", (c: Buffer) => (err += c.toString()));
  const [code] = (await once(copy, "exit")) as [number];
  if (code !== 0) throw new Error(`docker save ${IMAGE} | docker load failed (${code}): ${err.trim()}`);
}

// Reads its input, writes an output file, and says how its user namespace maps uids.
const SCRIPT = [
  "import os",
  "data = open('/work/input/data.txt').read()",
  "open('/work/output/result.txt', 'w').write(data.upper())",
  "print(open('/proc/self/uid_map').read().split('\\n')[0])",
  "print('uid', os.getuid())",
].join("\n");

describe("the agent on a dockerd started with --userns-remap", () => {
  let daemon: RemappedDockerd | undefined;
  let store: LocalStore;
  const made: DockerRunner[] = [];

  beforeAll(async () => {
    daemon = await startRemappedDockerd();
    await loadImage(join(daemon.root, "docker.sock"));
    store = await localStore(join(daemon.root, "cache"));
  }, 120_000);

  afterAll(async () => {
    for (const r of made) await r.close();
    await store?.close();
    if (daemon) await stopRemappedDockerd(daemon);
  }, 60_000);

  function runner(prestart: number) {
    const stateDir = join(daemon!.root, `state-${made.length}`);
    const r = new DockerRunner(
      daemon!.engine,
      { stateDir, agentName: "userns", instance: "ab".repeat(16), images: { python: IMAGE }, stopGraceS: 1, tmpfsMb: 16, outputCapBytes: 1 << 20, allowedImages: [], transfers: store.transfers, prestart },
      silentLogger,
    );
    made.push(r);
    return r;
  }

  async function runJob(r: DockerRunner, jobId: string) {
    const { seen, hooks } = recorder();
    const req = { jobId, attempt: 1, spec: JobRequest.parse({ kind: "python", python: { script: SCRIPT }, inputs: [{ dataset: "ds", path: "data.txt" }] }), gpuIndices: [], inputs: [store.input("ds", "data.txt", "remapped\n")], sandbox: AttemptSandbox.parse({}) };
    const out = await r.run(req, hooks, new AbortController().signal);
    return { out, seen };
  }

  it("runs a job whose root is not the host's root, reading its input and collecting its output", async () => {
    const info = await daemon!.engine.info();
    expect(info.SecurityOptions).toContain("name=userns");
    const { out, seen } = await runJob(runner(0), "j_userns");
    expect(out).toMatchObject({ exit_code: 0, failure_reason: null });
    expect(store.completed.get("result.txt")?.toString()).toBe("REMAPPED\n");
    expect(store.completed.has(".gridx/job.log")).toBe(true);
    // /proc/self/uid_map: container uid, host uid, count. Container root is a host user far from 0.
    const [inside, host] = seen.stdout.split("\n")[0]!.trim().split(/\s+/).map(Number);
    expect(inside).toBe(0);
    expect(host).toBeGreaterThan(0);
    expect(seen.stdout).toContain("uid 1000\n");
    // And the agent gave /work/output to that host user: container root's host uid, plus the job's uid.
    expect(jobUserOnHost(info).uid).toBe(host! + 1000);
  });

  it("runs a job in a sandbox prestarted before the engine's mapping was asked", async () => {
    const r = runner(1);
    r.start();
    await pollUntil(async () => r.prestarted!.ready, (n) => n === 1, { timeoutMs: 20_000, intervalMs: 20, what: "a prestarted sandbox" });
    store.completed.clear();
    const { out } = await runJob(r, "j_userns_pre");
    expect(out).toMatchObject({ exit_code: 0, failure_reason: null });
    expect(store.completed.get("result.txt")?.toString()).toBe("REMAPPED\n");
  });

  it("keeps the lease warden working: it reaches the engine's socket and stops the jobs of a lapsed lease", async () => {
    const instance = "ef".repeat(16);
    const warden = new Warden(daemon!.engine, { stateDir: join(daemon!.root, "warden-state"), instance, agentName: "userns", socketPath: join(daemon!.root, "docker.sock"), leaseS: 2 }, silentLogger);
    await warden.start();
    try {
      const job = await daemon!.engine.createContainer({ Image: IMAGE, Entrypoint: ["python3", "-c", "import time; time.sleep(600)"], Labels: { [LABELS.instance]: instance }, HostConfig: { NetworkMode: "none", Init: true } });
      await daemon!.engine.startContainer(job);
      warden.stopRenewing();
      const state = async () => (await daemon!.engine.listContainers([`${LABELS.instance}=${instance}`]))[0]?.State;
      expect(await pollUntil(state, (s) => s === "exited", { timeoutMs: 20_000, intervalMs: 100, what: "the job of the lapsed lease" })).toBe("exited");
    } finally {
      await warden.close();
    }
  });
});
