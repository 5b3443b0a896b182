import { createHash } from "node:crypto";
import { isIPv4 } from "node:net";

/**
 * Destinations an egress network never reaches, allowlisted or not: the host's loopback, the
 * private and shared (carrier-grade NAT) ranges a LAN or a cloud VPC lives in, link-local
 * (cloud metadata at 169.254.169.254), "this network", multicast and the reserved block with
 * the broadcast address. The host's own addresses, whatever their range, are dropped on the
 * INPUT side (see `jumpRules`).
 */
export const BLOCKED_RANGES: readonly { cidr: string; what: string }[] = [
  { cidr: "0.0.0.0/8", what: '"this network"' },
  { cidr: "10.0.0.0/8", what: "private (RFC 1918)" },
  { cidr: "100.64.0.0/10", what: "shared address space (CGNAT, RFC 6598)" },
  { cidr: "127.0.0.0/8", what: "loopback" },
  { cidr: "169.254.0.0/16", what: "link-local, cloud metadata (169.254.169.254)" },
  { cidr: "172.16.0.0/12", what: "private (RFC 1918)" },
  { cidr: "192.168.0.0/16", what: "private (RFC 1918)" },
  { cidr: "224.0.0.0/4", what: "multicast" },
  { cidr: "240.0.0.0/4", what: "reserved, broadcast" },
];

/** Linux's limit on an interface name (IFNAMSIZ less the NUL). */
const IFNAME_MAX = 15;

/** What one egress network and its filter are called, all derived from the agent instance and the allowlist. */
export interface EgressNames {
  /** The allowlist's hash: one network per distinct allowlist. */
  key: string;
  /** The Docker network: `gridx-egress-<instance8>-<key>`. */
  network: string;
  /** The Linux bridge Docker makes for it. */
  bridge: string;
  /** The iptables chain DOCKER-USER jumps to for traffic through the bridge. */
  chain: string;
}

/** An allowlist in one canonical form: lower-cased, deduplicated, sorted, so that order and repeats make no new network. */
export function canonicalAllow(allow: readonly string[]): string[] {
  return [...new Set(allow.map((a) => a.trim().toLowerCase()).filter(Boolean))].sort();
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/**
 * The names of the network for `allow` on agent `instance`. Chains of one instance share the
 * prefix `chainPrefix(instance)`, which is how a restarted agent finds a crashed run's.
 *
 * @example
 * egressNames("0123456789abcdef…", []).network; // "gridx-egress-01234567-<8 hex>"
 */
export function egressNames(instance: string, allow: readonly string[]): EgressNames {
  const key = sha256(canonicalAllow(allow).join("\n")).slice(0, 8);
  return namesFor(instance, key);
}

/** The names for a known key (as a network's label or a chain's name carries it). */
export function namesFor(instance: string, key: string): EgressNames {
  return {
    key,
    network: `gridx-egress-${instance.slice(0, 8)}-${key}`,
    bridge: `gx${sha256(`${instance}\n${key}`)}`.slice(0, IFNAME_MAX),
    chain: `${chainPrefix(instance)}${key}`,
  };
}

/** Every egress chain of this instance starts with this (`GRIDX-<instance8>-`): 23 characters in all, within iptables' 28. */
export function chainPrefix(instance: string): string {
  return `GRIDX-${instance.slice(0, 8)}-`;
}

/** Whether an allowlist entry is a host name, to be resolved when the rules are applied, rather than an address or CIDR. */
export function isHostName(entry: string): boolean {
  return !isIPv4(entry.split("/")[0]!);
}

function ipv4ToInt(ip: string): number {
  return ip.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
}

/** `a.b.c.d/n` (or a bare address, /32) as its first address and size. */
function cidrRange(cidr: string): { start: number; size: number } {
  const [ip, bits = "32"] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  return { start: Math.floor(ipv4ToInt(ip!) / size) * size, size };
}

/** Whether every address of `inner` lies inside `outer`. */
export function cidrWithin(inner: string, outer: string): boolean {
  const i = cidrRange(inner);
  const o = cidrRange(outer);
  return i.start >= o.start && i.start + i.size <= o.start + o.size;
}

export interface AllowDecision {
  /** IPv4 addresses and CIDRs the network may reach (still after the blocked ranges are dropped). */
  allowed: string[];
  /** Entries that let nothing through, and why: inside a blocked range, or a host name that did not resolve. */
  ignored: { entry: string; why: string }[];
}

/**
 * What an allowlist lets through, host names replaced by the IPv4 addresses they resolved to
 * (`resolved`, by host name; missing or empty: did not resolve). An entry wholly inside a
 * blocked range stays blocked and is reported, so the operator sees why it has no effect.
 */
export function allowedTargets(allow: readonly string[], resolved: ReadonlyMap<string, readonly string[]>, blocked: readonly string[]): AllowDecision {
  const allowed = new Set<string>();
  const ignored: AllowDecision["ignored"] = [];
  const consider = (entry: string, target: string) => {
    const inside = blocked.find((b) => cidrWithin(target, b));
    if (inside) ignored.push({ entry, why: `${target} is inside blocked ${inside}` });
    else allowed.add(target.includes("/") ? target : `${target}/32`);
  };
  for (const entry of canonicalAllow(allow)) {
    if (!isHostName(entry)) {
      consider(entry, entry);
      continue;
    }
    const ips = resolved.get(entry) ?? [];
    if (!ips.length) ignored.push({ entry, why: "did not resolve to an IPv4 address" });
    for (const ip of ips) consider(entry, ip);
  }
  return { allowed: [...allowed].sort(), ignored };
}

/**
 * The resolvers Docker's embedded DNS (127.0.0.11 in each container) forwards to, as dockerd
 * picks them: the host's /etc/resolv.conf, or systemd-resolved's upstream file when that one
 * names only the local stub, less loopback resolvers; Google's public ones when none is left.
 * The forwarded queries leave from the job's own network namespace, so the filter must let
 * them through (port 53 only) or no name resolves.
 */
export function dnsUpstreams(resolvConf: string, systemdResolvConf: string | null): string[] {
  const servers = (text: string) => [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!).filter((ip) => isIPv4(ip));
  const usable = (text: string) => servers(text).filter((ip) => !cidrWithin(ip, "127.0.0.0/8"));
  const own = servers(resolvConf);
  const chosen = own.length && own.every((ip) => cidrWithin(ip, "127.0.0.0/8")) && systemdResolvConf !== null ? usable(systemdResolvConf) : usable(resolvConf);
  return chosen.length ? [...new Set(chosen)] : ["8.8.8.8", "8.8.4.4"];
}

export interface ChainSpec {
  names: EgressNames;
  /** Ranges dropped on top of BLOCKED_RANGES: the operator's own, other Docker networks' subnets, this network's own. */
  extraBlocked: readonly string[];
  /** Resolvers the embedded DNS forwards to (`dnsUpstreams`): port 53 there is let through. */
  dns: readonly string[];
  /** null: anywhere not blocked; else only these (`allowedTargets`), an empty list letting nothing through. */
  allowed: readonly string[] | null;
}

/**
 * The `iptables-restore --noflush` input that (re)writes the network's chain in one
 * transaction: declaring the chain creates it, or empties an existing one, so reapplying is
 * idempotent and the chain is never seen half-written. The chain sees both directions
 * through the bridge:
 * - into the bridge, only replies (nothing opens a connection to a job, not even a job on the same network);
 * - out of it, DNS to the upstream resolvers, then every blocked range dropped, then the
 *   allowlist, if there is one, with everything else dropped.
 * A packet the chain does not drop returns to DOCKER-USER and Docker's own rules.
 */
export function chainRestore(spec: ChainSpec): string {
  const { chain, bridge, network } = spec.names;
  const rule = (match: string, target: string) => `-A ${chain} ${match} -m comment --comment ${network} -j ${target}`;
  const lines = [
    "*filter",
    `:${chain} - [0:0]`,
    rule(`-o ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED`, "RETURN"),
    rule(`-o ${bridge}`, "DROP"),
    ...spec.dns.flatMap((ip) => ["udp", "tcp"].map((proto) => rule(`-i ${bridge} -d ${ip}/32 -p ${proto} --dport 53`, "RETURN"))),
    ...[...BLOCKED_RANGES.map((b) => b.cidr), ...spec.extraBlocked].map((cidr) => rule(`-i ${bridge} -d ${cidr}`, "DROP")),
  ];
  if (spec.allowed) lines.push(...spec.allowed.map((cidr) => rule(`-i ${bridge} -d ${cidr}`, "RETURN")), rule(`-i ${bridge}`, "DROP"));
  lines.push("COMMIT", "");
  return lines.join("\n");
}

/** A rule outside the chain that sends the network's traffic to it: the table's chain and the rule's arguments. */
export interface JumpRule {
  chain: "DOCKER-USER" | "INPUT";
  args: string[];
}

/**
 * The rules that tie the network to its filter: DOCKER-USER (which Docker runs first in
 * FORWARD) sends both directions through the bridge to the chain, and INPUT drops whatever
 * the bridge sends the host itself, on any of its addresses. DNS is unaffected: Docker's
 * embedded resolver answers inside the job's own network namespace.
 */
export function jumpRules(names: EgressNames): JumpRule[] {
  const comment = ["-m", "comment", "--comment", names.network];
  return [
    { chain: "DOCKER-USER", args: ["-i", names.bridge, ...comment, "-j", names.chain] },
    { chain: "DOCKER-USER", args: ["-o", names.bridge, ...comment, "-j", names.chain] },
    { chain: "INPUT", args: ["-i", names.bridge, ...comment, "-j", "DROP"] },
  ];
}
