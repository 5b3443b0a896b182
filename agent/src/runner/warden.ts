import { createHash } from "node:crypto";
import { mkdir, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { DockerEngine, EngineAddress } from "../docker/engine.ts";
import type { ContainerCreateOptions, ContainerSummary } from "../docker/types.ts";
import type { Logger } from "../logger.ts";
import { LABELS } from "./sandbox.ts";

/**
 * How the lease is kept. A job container outlives a dead agent by at most
 * `leaseS + checkS + graceS` (26 s with the defaults), which must stay below the control
 * plane's WORKER_TIMEOUT_S (90 s by default) so the orphan is gone before the job is requeued.
 */
export const LEASE_DEFAULTS = {
  /** The lease expires this long after the agent last renewed it (--lease-s). */
  leaseS: 20,
  /** The agent renews at most this far apart; a short lease is renewed four times within it. */
  renewS: 5,
  /** How often the warden looks at the lease. */
  checkS: 1,
  /** Between the warden's SIGTERM and its SIGKILL. */
  graceS: 5,
} as const;

/** The image the warden runs from: its script is baked into the python runner. */
export const WARDEN_IMAGE = "gridx/python:latest";

export const WARDEN_LABELS = {
  /** The instance it guards. Deliberately not `gridx.instance`: that would be its own target. */
  instance: "gridx.warden",
  /** A hash of its image id and settings: a warden whose hash differs is replaced. */
  spec: "gridx.warden.spec",
} as const;

export interface WardenOptions {
  stateDir: string;
  /** `agentInstance(url, token, name)`: whose containers this warden stops. */
  instance: string;
  /** The agent's display name, labelled for people (`docker ps --filter label=gridx.agent=…`). */
  agentName: string;
  /** The engine's socket as the host sees it, mounted into the warden. */
  socketPath: string;
  leaseS?: number;
  image?: string;
  /**
   * The agent found its own lease lapsed (it was frozen, or its event loop stalled), so the
   * warden may have stopped its jobs. Called before anything else the agent does on waking, so
   * those jobs are reported lost (requeued), not blamed on their exit code.
   */
  onLapse?: (gapS: number) => void;
}

/** Where an instance's lease file lives: a folder of its own, since the warden mounts the folder. */
export function leaseDir(stateDir: string): string {
  return join(stateDir, "lease");
}

/** How often the agent renews: every 5 s, or four times per lease if that is shorter. */
export function renewEveryMs(leaseS: number): number {
  return Math.min(LEASE_DEFAULTS.renewS, leaseS / 4) * 1000;
}

/**
 * The warden's container: it needs the engine's socket and nothing else, so no network, a
 * read-only root and the lease folder read-only. It runs as uid 0 with every capability
 * dropped: enough to open a socket owned by root (or, rootless, by the user the engine runs
 * as, which uid 0 maps to), not enough to get past any other file's permissions. It keeps the
 * host's user namespace on an engine with --userns-remap, whose uid 0 could not open the
 * socket. Restarted by the engine after a crash or an engine restart until the agent removes it.
 * Pure, so every flag is checked by a unit test.
 */
export function wardenOptions(o: Required<Omit<WardenOptions, "onLapse">>): ContainerCreateOptions {
  return {
    name: `gridx-warden-${o.instance}`,
    Image: o.image,
    Entrypoint: ["python3", "/opt/gridx/warden.py"],
    Cmd: [],
    Env: [
      `GRIDX_INSTANCE=${o.instance}`,
      `GRIDX_LEASE_FILE=/lease/${o.instance}`,
      `GRIDX_LEASE_S=${o.leaseS}`,
      `GRIDX_CHECK_S=${LEASE_DEFAULTS.checkS}`,
      `GRIDX_GRACE_S=${LEASE_DEFAULTS.graceS}`,
    ],
    User: "0:0",
    WorkingDir: "/",
    Labels: { [WARDEN_LABELS.instance]: o.instance, [LABELS.agent]: o.agentName },
    NetworkDisabled: true,
    HostConfig: {
      Binds: [`${leaseDir(o.stateDir)}:/lease:ro`, `${o.socketPath}:/var/run/docker.sock`],
      NetworkMode: "none",
      ReadonlyRootfs: true,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges:true"],
      Memory: 64 * 1024 * 1024,
      MemorySwap: 64 * 1024 * 1024,
      NanoCpus: 0.25e9,
      PidsLimit: 16,
      IpcMode: "private",
      UsernsMode: "host",
      Privileged: false,
      AutoRemove: false,
      RestartPolicy: { Name: "unless-stopped" },
      // Its few lines (what it stopped, and why) are for `docker logs`; bounded, as the job's are not kept at all.
      LogConfig: { Type: "json-file", Config: { "max-size": "1m", "max-file": "1" } },
    },
  };
}

/** The spec label's value: a warden made from another image or with other settings differs. */
export function wardenSpec(imageId: string, options: ContainerCreateOptions): string {
  return createHash("sha256").update(JSON.stringify({ imageId, options })).digest("hex").slice(0, 16);
}

/** Which of the instance's wardens to keep (at most one: running, of the current spec); the rest go. */
export function pickWarden(found: ContainerSummary[], spec: string): { keep: ContainerSummary | null; remove: ContainerSummary[] } {
  const keep = found.find((c) => c.State === "running" && c.Labels?.[WARDEN_LABELS.spec] === spec) ?? null;
  return { keep, remove: found.filter((c) => c !== keep) };
}

/**
 * The agent's side of the lease: it renews `<stateDir>/lease/<instance>` while the agent runs
 * and keeps a warden container (runner-images/python/warden.py) watching it, which stops this
 * instance's job containers once the lease expires. The warden is a container, not a child
 * process, so a `kill -9` of the agent or a kill of its whole cgroup leaves it running.
 *
 * @example
 * const warden = new Warden(docker, { stateDir, instance, agentName: "lab-3", socketPath: "/var/run/docker.sock" }, log);
 * await warden.start(); // before taking jobs
 * // ...
 * await warden.close(); // after every job has ended
 */
export class Warden {
  private readonly opts: Required<WardenOptions>;
  private timer: NodeJS.Timeout | null = null;
  private renewFailing = false;
  /** When the lease was last renewed, by the monotonic clock. */
  private renewedAt: number | null = null;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly docker: DockerEngine,
    opts: WardenOptions,
    private readonly log: Logger,
  ) {
    this.opts = { leaseS: LEASE_DEFAULTS.leaseS, image: WARDEN_IMAGE, onLapse: () => undefined, ...opts };
  }

  get leaseFile(): string {
    return join(leaseDir(this.opts.stateDir), this.opts.instance);
  }

  /**
   * Renews the lease, then makes sure a current warden watches it, then keeps renewing. In
   * that order: a warden left from an agent that died would otherwise stop the containers
   * this one is about to start. Rejects when the warden cannot be made (say, no image), after
   * removing any earlier one, which would stop this agent's jobs once it stopped renewing.
   */
  async start(): Promise<void> {
    await mkdir(leaseDir(this.opts.stateDir), { recursive: true });
    await this.renew();
    this.timer = setInterval(() => void this.renew(), renewEveryMs(this.opts.leaseS));
    try {
      await this.ensure();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** Creates and starts the warden unless one of the current image and settings is running. */
  async ensure(): Promise<void> {
    const image = await this.docker.inspectImage(this.opts.image);
    const base = wardenOptions(this.opts);
    const spec = wardenSpec(image.Id, base);
    const options = { ...base, Labels: { ...base.Labels, [WARDEN_LABELS.spec]: spec } };
    const { keep, remove } = pickWarden(await this.docker.listContainers([`${WARDEN_LABELS.instance}=${this.opts.instance}`]), spec);
    await Promise.all(remove.map((c) => this.docker.removeContainer(c.Id)));
    if (keep) return;
    const id = await this.docker.createContainer(options);
    await this.docker.startContainer(id);
    this.log.info("lease warden started", { container: id.slice(0, 12), lease_s: this.opts.leaseS });
  }

  /**
   * Ends the lease on a clean shutdown, when no job is left: removes the warden, then the
   * lease file. Idempotent; both steps run even if one fails.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopRenewing();
      const wardens = await this.docker.listContainers([`${WARDEN_LABELS.instance}=${this.opts.instance}`]).catch((err: unknown) => {
        this.log.warn("cannot list the lease warden to remove it", { err });
        return [];
      });
      for (const c of wardens) await this.docker.removeContainer(c.Id).catch((err: unknown) => this.log.warn("cannot remove the lease warden", { err, container: c.Id.slice(0, 12) }));
      await rm(this.leaseFile, { force: true }).catch((err: unknown) => this.log.warn("cannot remove the lease file", { err, file: this.leaseFile }));
    })();
    return this.closing;
  }

  /** Stops renewing without ending the lease: what an agent's death looks like to the warden. */
  stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Touches the lease file, creating it if it is gone; a failure is logged once per run of failures. */
  async renew(): Promise<void> {
    const now = new Date();
    // A frozen process (SIGSTOP, a stalled event loop) finds out here that its jobs may have
    // been stopped: before awaiting anything, so the agent hears of it before the exits do.
    const at = performance.now();
    const gapS = (at - (this.renewedAt ?? at)) / 1000;
    this.renewedAt = at;
    if (gapS > this.opts.leaseS) {
      this.log.warn("the lease lapsed: the warden may have stopped this agent's jobs", { gap_s: Math.round(gapS), lease_s: this.opts.leaseS });
      this.opts.onLapse(gapS);
    }
    try {
      await utimes(this.leaseFile, now, now).catch((err: NodeJS.ErrnoException) => (err.code === "ENOENT" ? writeFile(this.leaseFile, "") : Promise.reject(err)));
      if (this.renewFailing) this.log.info("lease renewed again", { file: this.leaseFile });
      this.renewFailing = false;
    } catch (err) {
      if (!this.renewFailing) this.log.error("cannot renew the lease; the warden will stop this agent's jobs if this goes on", { err, file: this.leaseFile, lease_s: this.opts.leaseS });
      this.renewFailing = true;
    }
  }
}

/**
 * The warden for this agent, started; null, with a warning, where it cannot run: an engine
 * over TCP (its socket is not on this machine to mount) or no warden image. The agent then
 * runs without one, and a job container may outlive a killed agent.
 */
export async function startWarden(docker: DockerEngine, address: EngineAddress, opts: Omit<WardenOptions, "socketPath">, log: Logger): Promise<Warden | null> {
  if (!("socketPath" in address)) {
    log.warn("DOCKER_HOST is tcp://: no lease warden, so a job container may outlive this agent if it is killed", { host: address.host });
    return null;
  }
  const warden = new Warden(docker, { ...opts, socketPath: address.socketPath }, log);
  try {
    await warden.start();
    return warden;
  } catch (err) {
    log.warn("cannot start the lease warden, running without one: a job container may outlive this agent if it is killed", { err, image: opts.image ?? WARDEN_IMAGE });
    return null;
  }
}
