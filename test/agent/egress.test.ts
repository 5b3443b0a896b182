import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, it } from "vitest";
import { DockerEngine } from "../../agent/src/docker/engine.ts";
import { FrameDemuxer } from "../../agent/src/docker/frames.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { DockerRunner } from "../../agent/src/runner/docker-runner.ts";
import { TaskError, type RunHooks } from "../../agent/src/runner/runner.ts";
import { EgressNetworks } from "../../agent/src/sandbox-net/egress.ts";
import { chainPrefix, egressNames } from "../../agent/src/sandbox-net/rules.ts";
import { AttemptSandbox, JobRequest } from "../../protocol/index.ts";
import { pollUntil } from "../helpers/poll.ts";

/*
 * Network namespaces stand in for the world outside the machine: "internet" answers on two
 * public-looking addresses (198.18.0.0/15, which the filter does not block), "lan" on a
 * private one and on the metadata address 169.254.169.254. Each is an HTTP server that
 * answers with its own name. Jobs run through the real DockerRunner on the real filter.
 */

const run = promisify(execFile);
const sh = (cmd: string, ...args: string[]) => run(cmd, args).then((r) => r.stdout);
const docker = new DockerEngine();
const id = randomBytes(3).toString("hex");
const instance = randomBytes(16).toString("hex");
const o3 = randomInt(0, 256);
const lan = `10.${randomInt(200, 250)}.${randomInt(0, 256)}`;
const routeTable = String(20_000 + randomInt(0, 10_000));
const METADATA = "169.254.169.254";
/** A blocked destination drops packets silently: the probe gives up on it after this. */
const PROBE_TIMEOUT_S = 2;

const addr = {
  internet: `198.18.${o3}.2`,
  internet2: `198.19.${o3}.2`,
  hostOnInternet: `198.18.${o3}.1`,
  lan: `${lan}.2`,
};
const ns = { internet: `gridx-inet-${id}`, lan: `gridx-lan-${id}` };
const otherNet = { name: `gridx-test-other-${id}`, bridge: `gxo${id}` };

/** Answers every GET with its name; the servers stand for hosts out there. */
const SERVER = `import http.server, sys
name = sys.argv[1].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", str(len(name))); self.end_headers(); self.wfile.write(name)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), H).serve_forever()`;

/** Fetches every target at once and says what answered, then what the container's network looks like. */
const probe = (targets: Record<string, string>, self = "") => `import json, os, socket, urllib.request
from concurrent.futures import ThreadPoolExecutor
TARGETS = ${JSON.stringify(targets)}
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def get(url):
    try:
        with opener.open(url, timeout=${PROBE_TIMEOUT_S}) as r:
            return r.read().decode()
    except Exception as e:
        return "blocked: " + type(e).__name__
with ThreadPoolExecutor(len(TARGETS)) as pool:
    reached = dict(zip(TARGETS, pool.map(get, TARGETS.values())))
def resolve(name):
    try:
        return socket.gethostbyname(name)
    except OSError as e:
        return type(e).__name__
print(json.dumps({"reached": reached, "interfaces": sorted(os.listdir("/sys/class/net")), "ipv6": open("/proc/net/if_inet6").read(), "self": resolve(${JSON.stringify(self)}) if ${JSON.stringify(self)} else None}))`;

interface Probed {
  reached: Record<string, string>;
  interfaces: string[];
  ipv6: string;
  self: string | null;
}

const teardown: (() => Promise<unknown>)[] = [];
const servers: ChildProcess[] = [];
let hostServer: Server;
let hostPort = 0;
let otherServerIp = "";
let egress: EgressNetworks;
let runner: DockerRunner;

async function netnsServer(namespace: string, name: string): Promise<void> {
  const child = spawn("ip", ["netns", "exec", namespace, "/usr/bin/python3", "-c", SERVER, name, "80"], { stdio: "ignore" });
  servers.push(child);
}

/** A namespace joined to the host by a veth pair: the host side gets `.1`, the namespace `.2` and a default route back. */
async function joinedNamespace(name: string, prefix: string, tag: string): Promise<void> {
  const [host, inner] = [`gx${tag}${id}h`, `gx${tag}${id}n`];
  await sh("ip", "netns", "add", name);
  teardown.push(() => sh("ip", "netns", "del", name));
  await sh("ip", "link", "add", host, "type", "veth", "peer", "name", inner, "netns", name);
  teardown.push(() => sh("ip", "link", "del", host).catch(() => undefined));
  await sh("ip", "addr", "add", `${prefix}.1/24`, "dev", host);
  await sh("ip", "link", "set", host, "up");
  await sh("ip", "-n", name, "addr", "add", `${prefix}.2/24`, "dev", inner);
  await sh("ip", "-n", name, "link", "set", inner, "up");
  await sh("ip", "-n", name, "link", "set", "lo", "up");
  await sh("ip", "-n", name, "route", "add", "default", "via", `${prefix}.1`);
}

/** Sends what arrives on `bridge` for the metadata address to the LAN namespace, and only that: the host's own route to it, if any, stays. */
async function metadataRouteFrom(bridge: string): Promise<void> {
  await sh("ip", "rule", "add", "iif", bridge, "lookup", routeTable);
  teardown.push(() => sh("ip", "rule", "del", "iif", bridge, "lookup", routeTable));
}

const request = (jobId: string, script: string, sandbox: Partial<AttemptSandbox>) => ({
  jobId,
  attempt: 1,
  spec: JobRequest.parse({ kind: "python", python: { script } }),
  gpuIndices: [],
  inputs: [],
  sandbox: AttemptSandbox.parse(sandbox),
});

function newRunner(withEgress: EgressNetworks | undefined) {
  return new DockerRunner(docker, { stateDir: mkdtempSync(join(tmpdir(), "gridx-egress-")), agentName: "egress", instance, images: { python: "gridx/python:latest" }, stopGraceS: 1, tmpfsMb: 16, outputCapBytes: 1 << 20, allowedImages: [], egress: withEgress }, silentLogger);
}

async function runJob(r: DockerRunner, jobId: string, script: string, sandbox: Partial<AttemptSandbox>) {
  let stdout = "";
  const hooks: RunHooks = { started() {}, output: (stream, chunk) => void (stream === "stdout" && (stdout += chunk.toString())), system() {}, congested: () => false };
  const outcome = await r.run(request(jobId, script, sandbox), hooks, new AbortController().signal);
  return { outcome, stdout };
}

async function probeJob(jobId: string, targets: Record<string, string>, allow: string[] = []): Promise<Probed> {
  const { outcome, stdout } = await runJob(runner, jobId, probe(targets, `gridx-${jobId}-1`), { network: "egress", egress_allow: allow });
  if (outcome.exit_code !== 0) throw new Error(`the probe job failed: ${JSON.stringify(outcome)}\n${stdout}`);
  return JSON.parse(stdout) as Probed;
}

/** The same probe from a container on a plain Docker network, without the filter: what the job would reach without it. */
async function unfilteredProbe(targets: Record<string, string>): Promise<Probed> {
  const container = await docker.createContainer({ Image: "gridx/python:latest", Entrypoint: ["python3", "-c", probe(targets)], AttachStdout: true, AttachStderr: true, HostConfig: { NetworkMode: otherNet.name } });
  teardown.push(() => docker.removeContainer(container));
  let stdout = "";
  const demux = new FrameDemuxer((stream, bytes) => void (stream === "stdout" && (stdout += bytes.toString())));
  const attached = await docker.attachContainer(container);
  attached.on("data", (chunk: Buffer) => demux.write(chunk));
  const ended = once(attached, "end");
  await docker.startContainer(container);
  const exitCode = await docker.waitContainer(container);
  await ended;
  if (exitCode !== 0) throw new Error(`the unfiltered probe exited ${exitCode}: ${stdout}`);
  return JSON.parse(stdout) as Probed;
}

const isBlocked = (answer: string | undefined) => Boolean(answer?.startsWith("blocked"));

beforeAll(async () => {
  const started = Date.now();
  await joinedNamespace(ns.internet, `198.18.${o3}`, "i");
  await sh("ip", "-n", ns.internet, "addr", "add", `${addr.internet2}/32`, "dev", "lo");
  await sh("ip", "route", "add", `${addr.internet2}/32`, "via", addr.internet);
  await joinedNamespace(ns.lan, lan, "l");
  await sh("ip", "-n", ns.lan, "addr", "add", `${METADATA}/32`, "dev", "lo");
  await sh("ip", "route", "add", `${METADATA}/32`, "via", addr.lan, "table", routeTable);
  teardown.push(() => sh("ip", "route", "flush", "table", routeTable));
  await netnsServer(ns.internet, "internet");
  await netnsServer(ns.lan, "lan");

  // The host itself, on every address it has.
  hostServer = createServer((_req, res) => res.end("host"));
  hostServer.listen(0, "0.0.0.0");
  await once(hostServer, "listening");
  hostPort = (hostServer.address() as AddressInfo).port;

  // Another Docker network, with a server on it, and the unfiltered probe's home.
  await docker.createNetwork({ Name: otherNet.name, Driver: "bridge", Options: { "com.docker.network.bridge.name": otherNet.bridge } });
  teardown.push(() => docker.removeNetwork(otherNet.name));
  await metadataRouteFrom(otherNet.bridge);
  const other = await docker.createContainer({ Image: "gridx/python:latest", Entrypoint: ["python3", "-c", SERVER, "other-bridge", "8000"], HostConfig: { NetworkMode: otherNet.name } });
  teardown.push(() => docker.removeContainer(other));
  await docker.startContainer(other);
  const inspected = (await docker.inspectContainer(other)) as unknown as { NetworkSettings: { Networks: Record<string, { IPAddress: string }> } };
  otherServerIp = inspected.NetworkSettings.Networks[otherNet.name]!.IPAddress;

  egress = await EgressNetworks.start(docker, { instance, deny: [], off: false }, silentLogger);
  teardown.push(() => egress.close());
  runner = newRunner(egress);
  for (const allow of [[], [addr.internet, addr.lan]]) await metadataRouteFrom(egressNames(instance, allow).bridge);

  for (const [url, name] of [
    [`http://${addr.internet}/`, "internet"],
    [`http://${addr.internet2}/`, "internet"],
    [`http://${addr.lan}/`, "lan"],
  ] as const) {
    await pollUntil(() => fetch(url).then((r) => r.text(), () => ""), (body) => body === name, { timeoutMs: 10_000, intervalMs: 25, what: `${url} answering` });
  }
  console.log(`egress test setup: ${Date.now() - started} ms`);
}, 60_000);

afterAll(async () => {
  for (const s of servers) s.kill();
  await new Promise((r) => hostServer?.close(r));
  for (const step of teardown.reverse()) await step().catch((err: unknown) => console.warn("egress test cleanup:", err));
}, 60_000);

describe("egress networks on the real engine and iptables", () => {
  it.concurrent("lets a job reach the internet and nothing of the LAN, metadata, the host or other Docker networks; without the filter those answer", async ({ expect }) => {
    expect(egress.available).toBe(true);
    // The host on every address it has: its own on the "internet" link, the network's gateway, docker0's (where there is one).
    const gateway = (await docker.inspectNetwork((await egress.attach([])).name)).IPAM.Config![0]!.Gateway!;
    const bridgeGateway = (await docker.inspectNetwork("bridge").catch(() => null))?.IPAM.Config?.[0]?.Gateway;
    const docker0 = Object.values(networkInterfaces()).flat().some((a) => a?.address === bridgeGateway) ? bridgeGateway : undefined;
    const host = { hostOnInternet: `http://${addr.hostOnInternet}:${hostPort}/`, hostGateway: `http://${gateway}:${hostPort}/`, ...(docker0 ? { hostDocker0: `http://${docker0}:${hostPort}/` } : {}) };
    for (const url of Object.values(host)) expect(await fetch(url).then((r) => r.text())).toBe("host");
    const targets = { internet: `http://${addr.internet}/`, internet2: `http://${addr.internet2}/`, lan: `http://${addr.lan}/`, metadata: `http://${METADATA}/`, otherBridge: `http://${otherServerIp}:8000/`, ...host };
    const [job, unfiltered] = await Promise.all([probeJob(`egress-open-${id}`, targets), unfilteredProbe({ internet: targets.internet, lan: targets.lan, metadata: targets.metadata })]);
    expect(unfiltered.reached).toEqual({ internet: "internet", lan: "lan", metadata: "lan" });

    const { internet, internet2, ...rest } = job.reached;
    expect([internet, internet2]).toEqual(["internet", "internet"]);
    expect(Object.keys(rest).sort()).toEqual(["lan", "metadata", "otherBridge", ...Object.keys(host)].sort());
    for (const [what, answer] of Object.entries(rest)) expect(isBlocked(answer), what).toBe(true);
    expect(job.interfaces).toEqual(["eth0", "lo"]);
    expect(job.ipv6).toBe("");
    // Docker's embedded resolver answers inside the job's own namespace.
    expect(job.self).toMatch(/^172\.|^192\.168\./);
  });

  it.concurrent("with an allowlist, lets only the listed target through; a listed private address stays blocked", async ({ expect }) => {
    const job = await probeJob(`egress-allow-${id}`, { internet: `http://${addr.internet}/`, internet2: `http://${addr.internet2}/`, lan: `http://${addr.lan}/` }, [addr.internet, addr.lan]);
    expect(job.reached).toMatchObject({ internet: "internet" });
    expect(isBlocked(job.reached.internet2)).toBe(true);
    expect(isBlocked(job.reached.lan)).toBe(true);
  });

  it.concurrent("gives a job without egress no interface but lo", async ({ expect }) => {
    const { outcome, stdout } = await runJob(runner, `egress-none-${id}`, "import os\nprint(sorted(os.listdir('/sys/class/net')))", {});
    expect(outcome).toMatchObject({ exit_code: 0 });
    expect(stdout.trim()).toBe("['lo']");
  });

  it.concurrent("fails an egress job input_error on an agent without egress, saying why", async ({ expect }) => {
    const off = await EgressNetworks.start(docker, { instance: randomBytes(16).toString("hex"), deny: [], off: true }, silentLogger);
    const { outcome } = await runJob(newRunner(off), `egress-off-${id}`, "print(1)", { network: "egress" });
    expect(outcome).toMatchObject({ exit_code: null, failure_reason: "input_error", message: expect.stringContaining("--no-egress") });
    const { outcome: without } = await runJob(newRunner(undefined), `egress-absent-${id}`, "print(1)", { network: "egress" });
    expect(without).toMatchObject({ failure_reason: "input_error", message: expect.stringContaining("cannot give the job egress") });
    expect(await off.buildNetwork([])).toBeNull();
  });

  it("reapplies idempotently: one set of jumps per network however often a job joins", async ({ expect }) => {
    const names = egressNames(instance, []);
    await egress.attach([]);
    await egress.attach([]);
    const userRules = (await sh("iptables", "-S", "DOCKER-USER")).split("\n").filter((l) => l.includes(names.chain));
    const inputRules = (await sh("iptables", "-S", "INPUT")).split("\n").filter((l) => l.includes(names.bridge));
    expect(userRules).toHaveLength(2);
    expect(inputRules).toHaveLength(1);
    // Ahead of whatever else DOCKER-USER holds.
    const lines = (await sh("iptables", "-S", "DOCKER-USER")).split("\n");
    expect(lines.indexOf(userRules[1]!)).toBeLessThan(lines.indexOf("-A DOCKER-USER -j RETURN"));
  });

  it("makes room only from a network idle in the same turn as its teardown: one a job has just joined is never removed", async ({ expect }) => {
    let now = 0;
    const one = await EgressNetworks.start(docker, { instance: randomBytes(16).toString("hex"), deny: [], off: false, maxNetworks: 1, evictIdleMs: 1000, now: () => now }, silentLogger);
    teardown.push(() => one.close());
    const first = await one.attach([addr.internet]);
    now = 5000;
    // The second allowlist finds the first network idle and takes its room; the first allowlist's job comes right after.
    const [other, again] = await Promise.allSettled([one.attach([addr.internet2]), one.attach([addr.internet])]);
    expect(other.status).toBe("fulfilled");
    expect(again).toMatchObject({ status: "rejected", reason: { message: expect.stringMatching(/^this worker already keeps 1 egress networks \(one per allowlist\), each used within the last 1 s/) } });
    expect(again.status === "rejected" && again.reason instanceof TaskError).toBe(false);
    await expect(docker.inspectNetwork(first.name)).rejects.toMatchObject({ status: 404 });
    if (other.status === "fulfilled") expect((await docker.inspectNetwork(other.value.name)).Name).toBe(other.value.name);
  });

  it("fails a job internal, not input_error, when every network is in use or egress is shutting down: the worker's shortage, for now", async ({ expect }) => {
    const full = await EgressNetworks.start(docker, { instance: randomBytes(16).toString("hex"), deny: [], off: false, maxNetworks: 1 }, silentLogger);
    teardown.push(() => full.close());
    await full.attach([addr.internet]);
    const { outcome } = await runJob(newRunner(full), `egress-full-${id}`, "print(1)", { network: "egress", egress_allow: [addr.internet2] });
    expect(outcome).toMatchObject({ exit_code: null, failure_reason: "internal", message: expect.stringMatching(/^could not set up the egress network: this worker already keeps 1 egress networks/) });
    await full.close();
    const { outcome: closing } = await runJob(newRunner(full), `egress-closing-${id}`, "print(1)", { network: "egress", egress_allow: [addr.internet] });
    expect(closing).toMatchObject({ failure_reason: "internal", message: expect.stringContaining("shutting down its egress networks") });
  });

  it("gives builds the same filtered network", async ({ expect }) => {
    expect(await egress.buildNetwork([])).toBe(egressNames(instance, []).network);
  });

  it("a restarted agent removes the networks and chains its crashed run left, and no other agent's", async ({ expect }) => {
    const prefix = chainPrefix(instance);
    const bystander = await EgressNetworks.start(docker, { instance: randomBytes(16).toString("hex"), deny: [], off: false }, silentLogger);
    const theirs = await bystander.attach([]);
    teardown.push(() => bystander.close());

    const restarted = await EgressNetworks.start(docker, { instance, deny: [], off: false }, silentLogger);
    expect(await restarted.cleanupLeftovers()).toBe(2);
    expect((await docker.listNetworks([`gridx.instance=${instance}`])).map((n) => n.Name)).toEqual([]);
    const all = await sh("iptables", "-S");
    expect(all.split("\n").filter((l) => l.includes(prefix))).toEqual([]);
    for (const allow of [[], [addr.internet, addr.lan]]) expect(all).not.toContain(egressNames(instance, allow).bridge);
    expect((await docker.inspectNetwork(theirs.name)).Name).toBe(theirs.name);
    await bystander.close();
    await expect(docker.inspectNetwork(theirs.name)).rejects.toMatchObject({ status: 404 });
    expect(await sh("iptables", "-S")).not.toContain(theirs.name);
  });
});
