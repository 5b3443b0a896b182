import { spawn } from "node:child_process";
import { lookup } from "node:dns/promises";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { isIPv4 } from "node:net";
import { DockerError, type DockerEngine } from "../docker/engine.ts";
import type { Logger } from "../logger.ts";
import { LABELS } from "../runner/sandbox.ts";
import { TaskError } from "../runner/runner.ts";
import { allowedTargets, BLOCKED_RANGES, canonicalAllow, chainPrefix, chainRestore, dnsUpstreams, egressNames, isHostName, jumpRules, namesFor, type EgressNames } from "./rules.ts";

/** Where an egress network's allowlist hash goes on the network, so a restarted agent knows its chain. */
const EGRESS_KEY_LABEL = "gridx.egress_key";

export const EGRESS_DEFAULTS = {
  /** Egress networks (one per distinct allowlist) an agent keeps at once; each takes a subnet from Docker's address pools. */
  maxNetworks: 8,
  /** A network unused this long may be removed to make room for a new allowlist: longer than any build, whose steps attach one at a time. */
  evictIdleMs: 3_600_000,
  /** One iptables call, or one host name's resolution, must end within this. */
  commandTimeoutMs: 10_000,
} as const;

/** The network a job's container joins, as `containerOptions` takes it. */
export interface EgressAttachment {
  name: string;
  /** Whether the host has IPv6, so the container's must be switched off explicitly. */
  disableIpv6: boolean;
}

/** What environment builds call for a network to build on: null when this agent has no egress. */
export type BuildNetwork = (allow: string[]) => Promise<string | null>;

export interface EgressOptions {
  /** The agent installation (`agentInstance`): its networks and chains carry it, and cleanup goes by it. */
  instance: string;
  /** Ranges blocked on top of BLOCKED_RANGES (`--egress-deny`): a LAN on public addresses, a control plane's own. */
  deny: string[];
  /** The operator turned egress off (`--no-egress`). */
  off: boolean;
  maxNetworks?: number;
  evictIdleMs?: number;
  /** The clock idleness is measured by; Date.now unless a test holds it. */
  now?: () => number;
}

/** Runs `iptables` (or `iptables-restore` with `input` on stdin), waiting for the xtables lock; rejects with its stderr. */
function iptables(args: string[], input?: string, bin = "iptables"): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ["-w", ...args], { stdio: ["pipe", "pipe", "pipe"], timeout: EGRESS_DEFAULTS.commandTimeoutMs });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    child.on("error", reject);
    // A command that never started, or exited without reading its input: its exit says why.
    child.stdin.on("error", () => undefined);
    child.on("close", (code, signal) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${bin} ${args.join(" ")}: ${err.trim() || (signal ? `killed by ${signal}` : `exit ${code}`)}`));
    });
    child.stdin.end(input);
  });
}

const restore = (input: string) => iptables(["--noflush"], input, "iptables-restore");

/** Whether this process can write the rules egress needs; the reason when not. */
async function probe(instance: string): Promise<string | null> {
  try {
    await iptables(["-S", "DOCKER-USER"]);
  } catch (err) {
    return `cannot read Docker's DOCKER-USER chain, so the filter cannot be hooked in front of Docker's rules (run the agent as root or with CAP_NET_ADMIN, dockerd with iptables on, and one iptables backend for both): ${(err as Error).message}`;
  }
  const chain = `${chainPrefix(instance)}probe`;
  try {
    await restore(`*filter\n:${chain} - [0:0]\nCOMMIT\n`);
    await iptables(["-X", chain]);
  } catch (err) {
    return `cannot create an iptables chain: ${(err as Error).message}`;
  }
  return null;
}

/** IPv4 addresses `host` resolves to now, as the system resolver (with /etc/hosts) has them; none if it does not resolve in time. */
async function resolve4(host: string): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never[]>((r) => (timer = setTimeout(() => r([]), EGRESS_DEFAULTS.commandTimeoutMs)));
  try {
    return await Promise.race([lookup(host, { all: true, family: 4 }).then((found) => found.map((a) => a.address), () => []), late]);
  } finally {
    clearTimeout(timer);
  }
}

const readOrNull = (path: string) => readFile(path, "utf8").catch(() => null);

/**
 * The agent's filtered networks for jobs (and builds) with egress: one Docker bridge per
 * distinct allowlist, with inter-container traffic off and no IPv6, and an iptables chain that
 * keeps it off loopback, private, CGNAT, link-local (metadata), multicast and reserved ranges,
 * off every other Docker network and off the host itself, and, with an allowlist, off
 * everything not in it. Rules are rewritten (host names resolved again) every time a container
 * joins. See docs/security.md, "Network policy (egress)".
 *
 * @example
 * const egress = await EgressNetworks.start(docker, { instance, deny: [], off: false }, log);
 * if (egress.available) {
 *   const { name } = await egress.attach(["203.0.113.0/24", "pypi.org"]); // NetworkMode for the container
 * }
 */
export class EgressNetworks {
  /** Networks made in this run, by allowlist key, with when a container last joined. */
  private readonly made = new Map<string, { names: EgressNames; usedAt: number }>();
  /**
   * Attachments, removals and cleanup, one at a time: two reapplications must not interleave
   * their checks and inserts, and a network must not be torn down between a job's attach and
   * the idleness check that chose it.
   */
  private queue: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | null = null;
  private readonly maxNetworks: number;
  private readonly evictIdleMs: number;
  private readonly now: () => number;

  private constructor(
    private readonly docker: DockerEngine,
    private readonly opts: EgressOptions,
    /** Why this agent has no egress; null when it has. */
    readonly unavailable: string | null,
    /** Whether iptables can be written here: cleanup needs it even with egress turned off. */
    private readonly writable: boolean,
    private readonly log: Logger,
  ) {
    this.maxNetworks = opts.maxNetworks ?? EGRESS_DEFAULTS.maxNetworks;
    this.evictIdleMs = opts.evictIdleMs ?? EGRESS_DEFAULTS.evictIdleMs;
    this.now = opts.now ?? Date.now;
  }

  /** Checks whether the rules can be written here, and says why not when they cannot. Nothing is made until a job asks. */
  static async start(docker: DockerEngine, opts: EgressOptions, log: Logger): Promise<EgressNetworks> {
    const cannot = await probe(opts.instance);
    const why = opts.off ? "egress is turned off on this agent (--no-egress)" : cannot;
    if (why) log.warn("no egress on this agent: jobs asking for network egress are not scheduled here", { reason: why });
    return new EgressNetworks(docker, opts, why, cannot === null, log);
  }

  get available(): boolean {
    return this.unavailable === null;
  }

  /**
   * The network for `allow` (empty: anywhere not blocked), made if need be, its rules
   * rewritten now. Rejects with a TaskError (input_error) when this agent has no egress at
   * all. When it keeps as many networks as it may, all in use, or is shutting them down, the
   * shortage is this worker's for now, not the job's: a plain Error, which fails the job
   * `internal`.
   */
  async attach(allow: readonly string[]): Promise<EgressAttachment> {
    if (this.unavailable) throw new TaskError("input_error", `this worker cannot give the job egress: ${this.unavailable}`);
    const names = egressNames(this.opts.instance, allow);
    return this.serial(async () => {
      if (this.closing) throw new Error("this worker is shutting down its egress networks; the job can run once the agent is back");
      let entry = this.made.get(names.key);
      if (!entry) {
        await this.makeRoom();
        await this.create(names);
        entry = { names, usedAt: this.now() };
        this.made.set(names.key, entry);
      }
      entry.usedAt = this.now();
      await this.apply(names, canonicalAllow(allow));
      return { name: names.network, disableIpv6: existsSync("/proc/sys/net/ipv6") };
    });
  }

  /** A network for an environment build to run its steps on; null when this agent has no egress. */
  readonly buildNetwork: BuildNetwork = async (allow) => (this.available ? (await this.attach(allow)).name : null);

  /**
   * Removes this instance's networks and chains, its own and any a crashed run of it left,
   * never another agent's; returns how many networks went. A network still in use stays, and
   * so does its filter.
   */
  async cleanupLeftovers(): Promise<number> {
    const networks = await this.docker.listNetworks([`${LABELS.instance}=${this.opts.instance}`, EGRESS_KEY_LABEL]);
    const labelled = new Set(networks.map((n) => n.Labels?.[EGRESS_KEY_LABEL]).filter((k): k is string => Boolean(k)));
    const keys = new Set(labelled);
    if (this.writable) {
      const prefix = chainPrefix(this.opts.instance);
      for (const m of (await iptables(["-S"])).matchAll(/^-N (\S+)$/gm)) if (m[1]!.startsWith(prefix)) keys.add(m[1]!.slice(prefix.length));
    }
    let removed = 0;
    for (const key of keys) if ((await this.teardown(namesFor(this.opts.instance, key))) && labelled.has(key)) removed++;
    this.made.clear();
    return removed;
  }

  /** Removes every network and chain of this instance; call once no job runs. Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= this.serial(() => this.cleanupLeftovers()).then(() => undefined);
    return this.closing;
  }

  private serial<T>(step: () => Promise<T>): Promise<T> {
    const run = this.queue.then(step, step);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async create(names: EgressNames): Promise<void> {
    try {
      await this.docker.createNetwork({
        Name: names.network,
        CheckDuplicate: true,
        Driver: "bridge",
        EnableIPv6: false,
        Options: {
          "com.docker.network.bridge.name": names.bridge,
          "com.docker.network.bridge.enable_icc": "false",
          "com.docker.network.bridge.enable_ip_masquerade": "true",
        },
        Labels: { [LABELS.managed]: "true", [LABELS.instance]: this.opts.instance, [EGRESS_KEY_LABEL]: names.key },
      });
      this.log.info("made an egress network", { network: names.network, bridge: names.bridge });
    } catch (err) {
      // Made by a run of this instance whose cleanup has not got to it: it is ours, and its rules are rewritten next.
      if (!(err instanceof DockerError && err.status === 409)) throw err;
    }
  }

  /** Rewrites the network's chain (a single transaction), then makes sure it is hooked in and the host's side of the bridge has no IPv6. */
  private async apply(names: EgressNames, allow: string[]): Promise<void> {
    const [networks, resolvConf, systemdConf, resolved] = await Promise.all([
      this.docker.listNetworks(),
      readOrNull("/etc/resolv.conf"),
      readOrNull("/run/systemd/resolve/resolv.conf"),
      Promise.all(allow.filter(isHostName).map(async (h) => [h, await resolve4(h)] as const)).then((pairs) => new Map(pairs)),
    ]);
    const subnets = networks.flatMap((n) => (n.IPAM.Config ?? []).map((c) => c.Subnet ?? "")).filter((s) => isIPv4(s.split("/")[0]!));
    const extraBlocked = [...this.opts.deny, ...subnets];
    const allowed = allow.length ? allowedTargets(allow, resolved, [...BLOCKED_RANGES.map((b) => b.cidr), ...extraBlocked]) : null;
    if (allowed?.ignored.length) this.log.warn("egress allowlist entries that let nothing through", { network: names.network, ignored: allowed.ignored });
    await restore(chainRestore({ names, extraBlocked, dns: dnsUpstreams(resolvConf ?? "", systemdConf), allowed: allowed?.allowed ?? null }));
    for (const jump of jumpRules(names)) {
      const present = await iptables(["-C", jump.chain, ...jump.args]).then(() => true, () => false);
      // First in its chain, so an operator's ACCEPT further down cannot let a job past the filter.
      if (!present) await iptables(["-I", jump.chain, "1", ...jump.args]);
    }
    const ipv6 = `/proc/sys/net/ipv6/conf/${names.bridge}/disable_ipv6`;
    if (existsSync(ipv6)) await writeFile(ipv6, "1");
  }

  /**
   * Removes a network of this run idle long enough when there is no room for another (Docker
   * keeps one a container is on); throws when every one is in use. Runs in the queue, as every
   * attach does, so no job can join a network between its idleness check and its teardown.
   */
  private async makeRoom(): Promise<void> {
    if (this.made.size < this.maxNetworks) return;
    const idle = [...this.made.values()].filter((e) => this.now() - e.usedAt >= this.evictIdleMs).sort((a, b) => a.usedAt - b.usedAt);
    for (const e of idle) {
      if (await this.teardown(e.names)) {
        this.made.delete(e.names.key);
        return;
      }
    }
    throw new Error(
      `this worker already keeps ${this.maxNetworks} egress networks (one per allowlist), each used within the last ${Math.round(this.evictIdleMs / 1000)} s; a job with another allowlist can run once one has been idle that long`,
    );
  }

  /**
   * Network first: Docker refuses to remove one a container is on, and its filter must stay
   * while it does. A network already gone still has its chain and jumps removed. True when
   * the network is gone.
   */
  private async teardown(names: EgressNames): Promise<boolean> {
    try {
      await this.docker.removeNetwork(names.network);
    } catch (err) {
      if (!(err instanceof DockerError && err.status === 404)) {
        this.log.warn("could not remove an egress network; its filter stays", { network: names.network, err });
        return false;
      }
    }
    if (!this.writable) return true;
    for (const jump of jumpRules(names)) {
      // Until none is left: a crash between a check and an insert may have doubled one.
      let deleted = true;
      while (deleted) deleted = await iptables(["-D", jump.chain, ...jump.args]).then(() => true, () => false);
    }
    const exists = await iptables(["-S", names.chain]).then(() => true, () => false);
    if (exists) {
      await iptables(["-F", names.chain]);
      await iptables(["-X", names.chain]);
    }
    return true;
  }
}
