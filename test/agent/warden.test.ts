import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DockerEngine, engineAddress } from "../../agent/src/docker/engine.ts";
import type { ContainerSummary } from "../../agent/src/docker/types.ts";
import { silentLogger, type Logger } from "../../agent/src/logger.ts";
import { LABELS } from "../../agent/src/runner/sandbox.ts";
import { LEASE_DEFAULTS, leaseDir, pickWarden, renewEveryMs, startWarden, Warden, WARDEN_LABELS, wardenOptions, wardenSpec } from "../../agent/src/runner/warden.ts";
import { pollUntil } from "../helpers/poll.ts";

const docker = new DockerEngine();
const IMAGE = "gridx/python:latest";
const address = engineAddress(process.env);
const socketPath = "socketPath" in address ? address.socketPath : "/var/run/docker.sock";
const HOLDER = fileURLToPath(new URL("../support/lease-holder.ts", import.meta.url));
// Short, so a test sees the lease expire in seconds; the warden's own check and grace are its defaults.
const LEASE_S = 2;

describe("the warden's container and the lease's pure rules", () => {
  const opts = { stateDir: "/var/lib/gridx", instance: "abc", agentName: "lab-3", socketPath: "/run/docker.sock", leaseS: 20, image: IMAGE };

  it("is locked down: no network, read-only root and lease, no capabilities, bounded, restarted by the engine", () => {
    const o = wardenOptions(opts);
    expect(o).toMatchObject({
      name: "gridx-warden-abc",
      Image: IMAGE,
      Entrypoint: ["python3", "/opt/gridx/warden.py"],
      User: "0:0",
      NetworkDisabled: true,
      Env: expect.arrayContaining(["GRIDX_INSTANCE=abc", "GRIDX_LEASE_FILE=/lease/abc", "GRIDX_LEASE_S=20"]),
      HostConfig: {
        Binds: ["/var/lib/gridx/lease:/lease:ro", "/run/docker.sock:/var/run/docker.sock"],
        NetworkMode: "none",
        ReadonlyRootfs: true,
        CapDrop: ["ALL"],
        SecurityOpt: ["no-new-privileges:true"],
        UsernsMode: "host",
        Privileged: false,
        RestartPolicy: { Name: "unless-stopped" },
        PidsLimit: 16,
        Memory: 64 * 1024 * 1024,
      },
    });
    expect(Object.keys(o.HostConfig!)).not.toContain("CapAdd");
  });

  it("carries the instance under its own label, never gridx.instance, so it is never its own target", () => {
    const labels = wardenOptions(opts).Labels!;
    expect(labels).toEqual({ [WARDEN_LABELS.instance]: "abc", [LABELS.agent]: "lab-3" });
    expect(labels[LABELS.instance]).toBeUndefined();
  });

  it("tells wardens apart by image and settings", () => {
    const spec = wardenSpec("sha256:1", wardenOptions(opts));
    expect(wardenSpec("sha256:1", wardenOptions(opts))).toBe(spec);
    expect(wardenSpec("sha256:2", wardenOptions(opts))).not.toBe(spec);
    expect(wardenSpec("sha256:1", wardenOptions({ ...opts, leaseS: 30 }))).not.toBe(spec);
  });

  it("keeps one running warden of the current spec and removes every other", () => {
    const c = (Id: string, State: string, spec: string): ContainerSummary => ({ Id, State, ImageID: "sha256:1", Labels: { [WARDEN_LABELS.spec]: spec } });
    const current = c("a", "running", "s1");
    const stale = c("b", "running", "s0");
    const stopped = c("c", "exited", "s1");
    expect(pickWarden([stale, current, stopped], "s1")).toEqual({ keep: current, remove: [stale, stopped] });
    expect(pickWarden([stale, stopped], "s1")).toEqual({ keep: null, remove: [stale, stopped] });
  });

  it("renews every 5 s, or four times per lease when the lease is short", () => {
    expect(renewEveryMs(LEASE_DEFAULTS.leaseS)).toBe(5000);
    expect(renewEveryMs(2)).toBe(500);
  });
});

describe("the warden on the real engine", () => {
  const instances: string[] = [];
  const holders: ChildProcess[] = [];
  const newInstance = () => {
    const id = randomBytes(16).toString("hex");
    instances.push(id);
    return id;
  };

  afterEach(async () => {
    for (const p of holders.splice(0)) p.kill("SIGKILL");
    for (const id of instances.splice(0)) {
      const found = [...(await docker.listContainers([`${LABELS.instance}=${id}`])), ...(await docker.listContainers([`${WARDEN_LABELS.instance}=${id}`]))];
      await Promise.all(found.map((c) => docker.removeContainer(c.Id)));
    }
  });

  /** A job-like container of `instance` that would sleep for ten minutes. */
  async function sleeper(instance: string): Promise<string> {
    const id = await docker.createContainer({
      Image: IMAGE,
      Entrypoint: ["python3", "-c", "import time; time.sleep(600)"],
      Labels: { [LABELS.instance]: instance },
      HostConfig: { NetworkMode: "none", Init: true },
    });
    await docker.startContainer(id);
    return id;
  }

  const state = async (instance: string, id: string) => (await docker.listContainers([`${LABELS.instance}=${instance}`])).find((c) => c.Id === id)?.State;
  const wardensOf = (instance: string) => docker.listContainers([`${WARDEN_LABELS.instance}=${instance}`]);

  /** Starts a lease holder in a process of its own; resolves once it renews. */
  function holdLease(stateDir: string, instance: string): Promise<ChildProcess> {
    const child = spawn(process.execPath, ["--import", "tsx", HOLDER, stateDir, instance, String(LEASE_S)], { stdio: ["ignore", "pipe", "inherit"] });
    holders.push(child);
    return new Promise((resolve, reject) => {
      child.stdout!.on("data", (d: Buffer) => d.toString().includes("renewing") && resolve(child));
      child.on("exit", (code) => reject(new Error(`the lease holder exited with ${code} before renewing`)));
    });
  }

  it("stops its instance's containers once their agent is killed with SIGKILL, and no other instance's", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "gridx-warden-"));
    const instance = newInstance();
    const other = newInstance();
    const holder = await holdLease(stateDir, instance);
    const mine = await sleeper(instance);
    const theirs = await sleeper(other);

    // While renewed, the lease outlasts its own length: the job keeps running.
    const leaseFile = join(leaseDir(stateDir), instance);
    const startedAt = statSync(leaseFile).mtimeMs;
    await pollUntil(async () => statSync(leaseFile).mtimeMs - startedAt, (renewedFor) => renewedFor > (LEASE_S + LEASE_DEFAULTS.checkS) * 1000, { timeoutMs: 20_000, intervalMs: 100, what: "the lease's renewals" });
    expect(await state(instance, mine)).toBe("running");

    holder.kill("SIGKILL");
    await pollUntil(() => state(instance, mine), (s) => s === "exited", { timeoutMs: 30_000, intervalMs: 200, what: "the orphaned container" });
    expect(await state(other, theirs)).toBe("running");
    // The warden outlives the agent, and keeps watching.
    expect((await wardensOf(instance)).map((c) => c.State)).toEqual(["running"]);
  });

  it("stops a container of its instance started while no agent renews", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "gridx-warden-"));
    const instance = newInstance();
    const holder = await holdLease(stateDir, instance);
    holder.kill("SIGKILL");
    const late = await sleeper(instance);
    expect(await pollUntil(() => state(instance, late), (s) => s === "exited", { timeoutMs: 30_000, intervalMs: 200, what: "the container started after its agent died" })).toBe("exited");
  });

  it("keeps a current warden, replaces one of other settings, and close() removes it and the lease", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "gridx-warden-"));
    const instance = newInstance();
    const make = (leaseS: number) => new Warden(docker, { stateDir, instance, agentName: "warden-test", socketPath, leaseS }, silentLogger);
    const first = make(LEASE_S);
    await first.start();
    first.stopRenewing();
    const [started] = await wardensOf(instance);
    expect(started?.State).toBe("running");

    const again = make(LEASE_S);
    await again.start();
    expect((await wardensOf(instance)).map((c) => c.Id)).toEqual([started!.Id]);
    again.stopRenewing();

    const changed = make(LEASE_S + 1);
    await changed.start();
    const replaced = await wardensOf(instance);
    expect(replaced).toHaveLength(1);
    expect(replaced[0]!.Id).not.toBe(started!.Id);

    await changed.close();
    await changed.close();
    expect(await wardensOf(instance)).toEqual([]);
    expect(existsSync(changed.leaseFile)).toBe(false);
  });

  it("says so, and tells the agent, when the lease lapsed between two renewals (a frozen agent), and not otherwise", async () => {
    const warnings: string[] = [];
    const log: Logger = { ...silentLogger, warn: (msg) => warnings.push(msg), child: () => log };
    const stateDir = mkdtempSync(join(tmpdir(), "gridx-warden-"));
    mkdirSync(leaseDir(stateDir));
    const lapses: number[] = [];
    const warden = new Warden(docker, { stateDir, instance: newInstance(), agentName: "warden-test", socketPath, leaseS: LEASE_S, onLapse: (gapS) => lapses.push(gapS) }, log);
    await warden.renew();
    await warden.renew();
    expect(warnings).toEqual([]);
    const frozenUntil = performance.now() + (LEASE_S + 1) * 1000;
    vi.spyOn(performance, "now").mockReturnValue(frozenUntil);
    const renewing = warden.renew();
    // Told before the renewal's own I/O, so the agent stops its jobs before their exits are read.
    expect(lapses).toHaveLength(1);
    await renewing;
    vi.restoreAllMocks();
    expect(lapses[0]).toBeGreaterThan(LEASE_S);
    expect(warnings).toEqual([expect.stringMatching(/lease lapsed/)]);
    expect(existsSync(warden.leaseFile)).toBe(true);
  });

  it("runs without a warden, saying why, where it cannot run one", async () => {
    const warnings: string[] = [];
    const log: Logger = { ...silentLogger, warn: (msg) => warnings.push(msg), child: () => log };
    const stateDir = mkdtempSync(join(tmpdir(), "gridx-warden-"));
    const instance = newInstance();
    expect(await startWarden(docker, { socketPath }, { stateDir, instance, agentName: "warden-test", image: "gridx/not-built:never" }, log)).toBeNull();
    expect(await startWarden(docker, { host: "10.0.0.5", port: 2375 }, { stateDir, instance, agentName: "warden-test" }, log)).toBeNull();
    expect(warnings).toEqual([expect.stringMatching(/cannot start the lease warden/), expect.stringMatching(/tcp/)]);
    expect(await wardensOf(instance)).toEqual([]);
  });
});
