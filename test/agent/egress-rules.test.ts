import { describe, expect, it } from "vitest";
import { allowedTargets, BLOCKED_RANGES, chainPrefix, chainRestore, cidrWithin, dnsUpstreams, egressNames, jumpRules, namesFor } from "../../agent/src/sandbox-net/rules.ts";
import { loadConfig } from "../../agent/src/config.ts";
import { takesPrestarted } from "../../agent/src/runner/prestart.ts";
import { containerOptions } from "../../agent/src/runner/sandbox.ts";
import { AttemptSandbox, JobRequest } from "../../protocol/index.ts";

const instance = "0123456789abcdef0123456789abcdef";
const blocked = BLOCKED_RANGES.map((b) => b.cidr);

describe("egressNames", () => {
  it("gives one network per distinct allowlist, whatever its order, case or repeats", () => {
    const a = egressNames(instance, ["pypi.org", "203.0.113.0/24"]);
    expect(egressNames(instance, ["203.0.113.0/24", "PyPI.org", "pypi.org"])).toEqual(a);
    expect(egressNames(instance, []).key).not.toBe(a.key);
    expect(egressNames("fedcba9876543210fedcba9876543210", ["pypi.org", "203.0.113.0/24"]).bridge).not.toBe(a.bridge);
  });

  it("keeps names within Linux's and iptables' limits and finds them again from the key", () => {
    const n = egressNames(instance, ["pypi.org"]);
    expect(n.network).toBe(`gridx-egress-01234567-${n.key}`);
    expect(n.chain).toBe(`GRIDX-01234567-${n.key}`);
    expect(n.chain.startsWith(chainPrefix(instance))).toBe(true);
    expect(n.bridge.length).toBeLessThanOrEqual(15);
    expect(n.chain.length).toBeLessThanOrEqual(28);
    expect(namesFor(instance, n.key)).toEqual(n);
  });
});

describe("cidrWithin", () => {
  it("says whether every address of a range lies in another", () => {
    expect(cidrWithin("169.254.169.254", "169.254.0.0/16")).toBe(true);
    expect(cidrWithin("172.31.255.255/32", "172.16.0.0/12")).toBe(true);
    expect(cidrWithin("172.32.0.1", "172.16.0.0/12")).toBe(false);
    expect(cidrWithin("10.0.0.0/7", "10.0.0.0/8")).toBe(false);
    expect(cidrWithin("0.0.0.0/0", "10.0.0.0/8")).toBe(false);
  });
});

describe("allowedTargets", () => {
  it("keeps addresses and CIDRs, replaces host names by what they resolved to, and reports what lets nothing through", () => {
    const resolved = new Map([
      ["pypi.org", ["151.101.0.223", "151.101.64.223"]],
      ["intranet.example", ["10.1.2.3"]],
    ]);
    const d = allowedTargets(["203.0.113.0/24", "198.51.100.7", "pypi.org", "intranet.example", "gone.example", "10.0.0.0/8", "169.254.169.254"], resolved, blocked);
    expect(d.allowed).toEqual(["151.101.0.223/32", "151.101.64.223/32", "198.51.100.7/32", "203.0.113.0/24"]);
    expect(d.ignored).toEqual([
      { entry: "10.0.0.0/8", why: "10.0.0.0/8 is inside blocked 10.0.0.0/8" },
      { entry: "169.254.169.254", why: "169.254.169.254 is inside blocked 169.254.0.0/16" },
      { entry: "gone.example", why: "did not resolve to an IPv4 address" },
      { entry: "intranet.example", why: "10.1.2.3 is inside blocked 10.0.0.0/8" },
    ]);
  });

  it("keeps a range that only overlaps a blocked one: the blocked part is dropped by the rules before it", () => {
    expect(allowedTargets(["0.0.0.0/0"], new Map(), blocked).allowed).toEqual(["0.0.0.0/0"]);
  });
});

describe("dnsUpstreams", () => {
  it("takes the host's resolvers as dockerd does, loopback ones left out", () => {
    expect(dnsUpstreams("nameserver 10.255.255.53\nnameserver 127.0.0.1\nnameserver ::1\n", null)).toEqual(["10.255.255.53"]);
    expect(dnsUpstreams("# systemd-resolved\nnameserver 127.0.0.53\noptions edns0\n", "nameserver 192.168.1.1\nnameserver 192.168.1.1\n")).toEqual(["192.168.1.1"]);
    expect(dnsUpstreams("nameserver 127.0.0.53\n", null)).toEqual(["8.8.8.8", "8.8.4.4"]);
    expect(dnsUpstreams("", null)).toEqual(["8.8.8.8", "8.8.4.4"]);
  });
});

describe("chainRestore", () => {
  const names = egressNames(instance, []);
  const rules = (text: string) => text.split("\n").filter((l) => l.startsWith("-A "));

  it("lets replies in and nothing else, DNS to the resolvers out, then drops every blocked range; without an allowlist the rest returns to Docker", () => {
    const text = chainRestore({ names, extraBlocked: ["198.51.100.0/24", "172.18.0.0/16"], dns: ["10.255.255.53"], allowed: null });
    expect(text.split("\n").slice(0, 2)).toEqual(["*filter", `:${names.chain} - [0:0]`]);
    expect(text.trimEnd().endsWith("COMMIT")).toBe(true);
    const r = rules(text).map((l) => l.replace(` -m comment --comment ${names.network}`, "").replace(`-A ${names.chain} `, ""));
    expect(r.slice(0, 4)).toEqual([
      `-o ${names.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
      `-o ${names.bridge} -j DROP`,
      `-i ${names.bridge} -d 10.255.255.53/32 -p udp --dport 53 -j RETURN`,
      `-i ${names.bridge} -d 10.255.255.53/32 -p tcp --dport 53 -j RETURN`,
    ]);
    const dropped = r.slice(4).map((l) => /^-i \S+ -d (\S+) -j DROP$/.exec(l)?.[1]);
    expect(dropped).toEqual([...blocked, "198.51.100.0/24", "172.18.0.0/16"]);
    expect(dropped).toEqual(expect.arrayContaining(["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"]));
  });

  it("with an allowlist, returns only what it names, after the blocked ranges, and drops the rest", () => {
    const r = rules(chainRestore({ names, extraBlocked: [], dns: [], allowed: ["203.0.113.0/24"] }));
    const tail = r.slice(-2).map((l) => l.replace(` -m comment --comment ${names.network}`, ""));
    expect(tail).toEqual([`-A ${names.chain} -i ${names.bridge} -d 203.0.113.0/24 -j RETURN`, `-A ${names.chain} -i ${names.bridge} -j DROP`]);
    expect(r.findIndex((l) => l.includes("-d 10.0.0.0/8 "))).toBeLessThan(r.length - 2);
    expect(rules(chainRestore({ names, extraBlocked: [], dns: [], allowed: [] })).at(-1)).toBe(`-A ${names.chain} -i ${names.bridge} -m comment --comment ${names.network} -j DROP`);
  });
});

describe("jumpRules", () => {
  it("sends both directions through the bridge to the chain and drops all the bridge sends the host", () => {
    const n = egressNames(instance, []);
    const c = ["-m", "comment", "--comment", n.network];
    expect(jumpRules(n)).toEqual([
      { chain: "DOCKER-USER", args: ["-i", n.bridge, ...c, "-j", n.chain] },
      { chain: "DOCKER-USER", args: ["-o", n.bridge, ...c, "-j", n.chain] },
      { chain: "INPUT", args: ["-i", n.bridge, ...c, "-j", "DROP"] },
    ]);
  });
});

describe("egress jobs in the sandbox", () => {
  const input = { name: "n", image: "i", argv: null, env: {}, limits: { timeout_s: 1, memory_mb: 16, cpus: 1, pids: 16 }, gpuIndices: [], inputDir: "/i", outputDir: "/o", codeDir: null, tmpfsMb: 1, labels: {}, runtime: "runc" as const };

  it("join the egress network with IPv6 off, and keep every other lock", () => {
    const none = containerOptions(input);
    const egress = containerOptions({ ...input, network: { name: "gridx-egress-01234567-abcdef01", disableIpv6: true } });
    expect(egress.NetworkDisabled).toBe(false);
    expect(egress.HostConfig?.NetworkMode).toBe("gridx-egress-01234567-abcdef01");
    expect(egress.HostConfig?.Sysctls).toEqual({ "net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1" });
    const { NetworkMode: _m, Sysctls: _s, ...locks } = egress.HostConfig!;
    const { NetworkMode: noneMode, ...noneLocks } = none.HostConfig!;
    expect(locks).toEqual(noneLocks);
    expect(none.NetworkDisabled).toBe(true);
    expect(noneMode).toBe("none");
    expect(egress.HostConfig).not.toHaveProperty("PortBindings");
    expect(containerOptions({ ...input, network: { name: "x", disableIpv6: false } }).HostConfig).not.toHaveProperty("Sysctls");
  });

  it("never take a prestarted sandbox, which has no network", () => {
    const spec = JobRequest.parse({ kind: "python", python: { script: "print(1)" } });
    expect(takesPrestarted({ spec, gpuIndices: [], sandbox: AttemptSandbox.parse({}) })).toBe(true);
    expect(takesPrestarted({ spec, gpuIndices: [], sandbox: AttemptSandbox.parse({ network: "egress" }) })).toBe(false);
  });
});

describe("egress settings", () => {
  const env = { GRIDX_URL: "http://x", GRIDX_AGENT_TOKEN: "gxa_0123456789" };

  it("default to egress where it can be filtered, with nothing denied on top", () => {
    expect(loadConfig([], env)).toMatchObject({ ok: true, config: { noEgress: false, egressDeny: [] } });
    expect(loadConfig([], { ...env, GRIDX_EGRESS_DENY: "203.0.113.0/24,198.51.100.7", GRIDX_NO_EGRESS: "1" })).toMatchObject({ ok: true, config: { noEgress: true, egressDeny: ["203.0.113.0/24", "198.51.100.7"] } });
    expect(loadConfig(["--no-egress", "--egress-deny", "192.0.2.0/24"], env)).toMatchObject({ ok: true, config: { noEgress: true, egressDeny: ["192.0.2.0/24"] } });
  });

  it("refuse a deny entry that is not an IPv4 range, naming the setting", () => {
    expect(loadConfig(["--egress-deny", "example.com"], env)).toEqual({ ok: false, error: expect.stringMatching(/^egressDeny\.0: an IPv4 address or CIDR/) });
  });
});
