import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type AddressInfo, type Server } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../../agent/src/docker/engine.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { prepareBuildCgroup, removeBuildCgroup, type BuildCgroup, type BuildLimits } from "../../agent/src/repos/build-limits.ts";
import { EnvImages, type BuildSource, type EgressNetworkFor, type EnvImagesOptions } from "../../agent/src/repos/env-images.ts";
import { GitCache } from "../../agent/src/repos/git-cache.ts";
import { RepoWorkspace } from "../../agent/src/repos/workspace.ts";
import { LoginPulls } from "../../agent/src/runner/command-image.ts";
import { TaskError } from "../../agent/src/runner/runner.ts";
import { EgressNetworks } from "../../agent/src/sandbox-net/egress.ts";
import { AttemptSandbox, envKey } from "../../protocol/index.ts";
import { pollUntil } from "../helpers/poll.ts";
import { TestRepo } from "../support/git-repos.ts";

/*
 * Real builds on the real engine, from real git commits, through RepoWorkspace.prepare as a
 * repo job gets its environment: every limit is shown to hold inside a RUN step, and each way
 * past one ends image_error with the reason. Everything builds FROM the local python runner
 * image, so no step needs the network.
 */

const run = promisify(execFile);
// oxlint-disable-next-line no-control-regex -- ANSI colour codes
const ANSI = /\u001b\[[0-9;]*m/g;
const docker = new DockerEngine();
const CGROUP_ROOT = "/sys/fs/cgroup";
const instance = `test${randomBytes(6).toString("hex")}`;
const limits: BuildLimits = { cpus: 0.5, memoryMb: 256, pids: 64, timeoutMs: 60_000, maxImageBytes: 20 * 1024 ** 3 };
const root = mkdtempSync(join(tmpdir(), "gridx-env-images-"));
const git = new GitCache({ root: join(root, "git"), capBytes: 1 << 30, timeoutMs: 30_000, authTtlMs: 0, allowLocal: true, log: silentLogger });
const repo = TestRepo.create(join(root, "env"));
const built = new Set<string>();
let cgroup: BuildCgroup;

function images(opts: Partial<EnvImagesOptions> = {}): EnvImages {
  return new EnvImages(docker, {
    agentName: `agent-${instance}`,
    limits,
    cgroup,
    cacheBytes: 1024 ** 4,
    usesFile: join(root, "env-images.json"),
    loginPulls: new LoginPulls(join(root, "pulled-with-login.json")),
    log: silentLogger,
    ...opts,
  });
}

/** A commit's Dockerfile, and a context no test expects to be asked for: the image is there already. */
const noBuild = (commit: string): BuildSource => ({ dockerfile: (max) => git.archivedFile(repo.dir, commit, "Dockerfile", max), context: () => Promise.reject(new Error("no build expected")) });

interface Prepared {
  image: string;
  lines: string[];
  failure: TaskError | null;
  commit: string;
}

/** Commits `files` (a Dockerfile among them) and gets the environment as a repo job would. */
async function prepare(files: Record<string, string>, envImages = images(), sandbox: Partial<AttemptSandbox> = {}, held = true, message?: string): Promise<Prepared> {
  return prepareAt(repo.commit({ ...files, "nonce.txt": randomBytes(8).toString("hex") }, message), envImages, sandbox, held);
}

/** Gets the environment of an env commit made already. */
async function prepareAt(commit: string, envImages = images(), sandbox: Partial<AttemptSandbox> = {}, held = true): Promise<Prepared> {
  const image = EnvImages.tagFor({ url: repo.dir, commit, dockerfile: "Dockerfile" });
  built.add(image);
  const lines: string[] = [];
  const codeDir = mkdtempSync(join(root, "code-"));
  const task = { kind: "repo" as const, repo: { code_repo_url: repo.dir, code_commit_id: commit, env_repo_url: repo.dir, env_commit_id: commit, dockerfile_path: "Dockerfile" }, command: ["true"] };
  const failure = await new RepoWorkspace(git, envImages)
    .prepare(task, undefined, AttemptSandbox.parse({ build_network: "none", ...sandbox }), codeDir, { system: () => undefined, build: (l) => lines.push(l) }, new AbortController().signal)
    .then(
      () => null,
      (err: unknown) => {
        if (err instanceof TaskError) return err;
        throw err;
      },
    );
  if (!held) rmSync(codeDir, { recursive: true });
  // A step's stderr comes coloured, and the colour's end can open the next line.
  return { image, lines: lines.map((l) => l.replace(ANSI, "")), failure, commit };
}

const exists = (image: string) => docker.inspectImage(image).then(() => true, () => false);
/** Step containers still in the agent's build cgroup. */
const stepCgroups = () => readdirSync(join(CGROUP_ROOT, "pids", `gridx-build-${instance}`)).filter((n) => statSync(join(CGROUP_ROOT, "pids", `gridx-build-${instance}`, n)).isDirectory());

beforeAll(async () => {
  cgroup = await prepareBuildCgroup({ info: await docker.info(), local: true, root: CGROUP_ROOT }, instance, limits);
});

afterAll(async () => {
  for (const image of built) await docker.removeImage(image).catch(() => undefined);
  await removeBuildCgroup(cgroup);
  const left = readdirSync(CGROUP_ROOT).filter((c) => existsSync(join(CGROUP_ROOT, c, `gridx-build-${instance}`)));
  if (left.length) throw new Error(`the build cgroup is still under ${left.join(", ")}`);
});

describe("confined environment builds (real engine)", () => {
  it("builds an environment once for two jobs that ask for it at the same moment: the second joins the build", async () => {
    const commit = repo.commit({ Dockerfile: "FROM gridx/python:latest\nLABEL race=1\n", "nonce.txt": randomBytes(8).toString("hex") });
    const env = { url: repo.dir, commit, dockerfile: "Dockerfile", key: "race" };
    built.add(EnvImages.tagFor(env));
    // The commit in the agent's git cache, as a repo job's workspace has it before the build.
    await git.resolve(repo.dir, commit, undefined, new AbortController().signal);
    const source: BuildSource = { dockerfile: (max) => git.archivedFile(repo.dir, commit, "Dockerfile", max), context: (use) => git.withArchive(repo.dir, commit, use) };
    const envImages = images();
    const use = { network: "none" as const, egressAllow: [], held: () => true };
    const both = await Promise.all([0, 1].map(() => envImages.ensure(env, source, () => undefined, new AbortController().signal, use)));
    expect(both.map((b) => b.how).sort()).toEqual(["built", "joined"]);
    expect(both[0]!.image).toBe(both[1]!.image);
  });

  it("makes the agent's build cgroup on this machine (root, cgroupfs)", () => {
    expect(cgroup).toEqual({ ok: true, parent: `/gridx-build-${instance}` });
    expect(readFileSync(join(CGROUP_ROOT, "pids", `gridx-build-${instance}`, "pids.max"), "utf8").trim()).toBe("64");
  });

  it("runs each RUN step under the memory, swap, CPU, open-file and process limits, with no network", async () => {
    const got = await prepare({
      Dockerfile: [
        "FROM gridx/python:latest",
        "RUN grep -E ':(pids|memory|cpu):' /proc/self/cgroup | sed 's/^/cgroup /'",
        "RUN echo memory $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) memsw $(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes) quota $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) period $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us) nofile $(ulimit -n) net $(ls /sys/class/net)",
      ].join("\n"),
    });
    expect(got.failure).toBeNull();
    expect(got.lines).toContain(`memory ${256 * 1024 * 1024} memsw ${256 * 1024 * 1024} quota 50000 period 100000 nofile 4096 net lo`);
    // The step's pids, memory and cpu cgroups are children of the agent's, whose limits bind them all.
    const cgroups = got.lines.filter((l) => l.startsWith("cgroup "));
    expect(cgroups).toHaveLength(3);
    for (const line of cgroups) expect(line).toMatch(new RegExp(`^cgroup \\d+:(pids|memory|cpu):/gridx-build-${instance}/[0-9a-f]{64}$`));
    expect(got.lines[1]).toBe("[gridx: build limits: 0.5 CPUs, 256 MiB memory (no swap), 64 processes, 60 s, an image of at most 20.0 GiB; each build, and all of this agent's builds together]");
    expect(got.lines[2]).toBe("[gridx: build network: none (the pool's build_network is none)]");
    expect(await exists(got.image)).toBe(true);
  });

  it("stops a fork bomb at the process limit: image_error, saying so", async () => {
    const got = await prepare({ Dockerfile: "FROM gridx/python:latest\nRUN python3 -c 'import os; [os.fork() for _ in iter(int, 1)]'\n" });
    expect(got.failure?.reason).toBe("image_error");
    expect(got.failure?.message).toMatch(/environment build failed: The command .* returned a non-zero code: 1; a step could not start more processes: the build process limit is 64 \(--build-pids\); output: .*(Resource temporarily unavailable|BlockingIOError)/);
    expect(await exists(got.image)).toBe(false);
  });

  it("kills a step over the memory limit: image_error, naming the limit", async () => {
    const got = await prepare({ Dockerfile: "FROM gridx/python:latest\nRUN python3 -c 'x = b\"x\" * (1024 ** 3); print(len(x))'\n" });
    expect(got.failure?.reason).toBe("image_error");
    expect(got.failure?.message).toMatch(/returned a non-zero code: 137; killed \(SIGKILL\): most likely a step went over the build memory limit of 256 MiB \(--build-memory-mb\)/);
  });

  it("ends a build past its time limit, and its step's container with it", async () => {
    const started = Date.now();
    const got = await prepare({ Dockerfile: "FROM gridx/python:latest\nRUN echo sleeping && sleep 600\n" }, images({ limits: { ...limits, timeoutMs: 3000 } }));
    expect(got.failure?.reason).toBe("image_error");
    expect(got.failure?.message).toBe("the environment build failed: the build ran past this agent's limit of 3 s (--build-timeout)");
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(got.lines).toContain("sleeping");
    // The engine kills the step when the build's request goes: no process of it is left.
    await pollUntil(async () => stepCgroups(), (left) => left.length === 0, { timeoutMs: 15_000, intervalMs: 200, what: "the timed-out step's container going" });
  });

  it("fails and removes an image over --build-max-gb", async () => {
    const got = await prepare({ Dockerfile: "FROM gridx/python:latest\nRUN echo small\n" }, images({ limits: { ...limits, maxImageBytes: 50 * 1024 * 1024 } }));
    expect(got.failure?.reason).toBe("image_error");
    expect(got.failure?.message).toMatch(/the environment image is 0\.\d\d GiB, over this agent's bound of 0\.05 GiB \(--build-max-gb\); it was removed$/);
    expect(await exists(got.image)).toBe(false);
  });

  describe("the build network", () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      server = createServer((s) => s.end("hello\n"));
      await new Promise<void>((r) => server.listen(0, "0.0.0.0", r));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    /** A step that tries the host on each of its addresses, and the default bridge's gateway. */
    async function probeBuild(envImages: EnvImages, sandbox: Partial<AttemptSandbox>) {
      const ipam = JSON.parse((await run("docker", ["network", "inspect", "bridge", "--format", "{{json (index .IPAM.Config 0)}}"])).stdout) as { Gateway?: string; Subnet: string };
      // An engine that found docker0 already there reports no Gateway: the bridge's first address is it.
      const gateway = ipam.Gateway || ipam.Subnet.replace(/\.0\/\d+$/, ".1");
      const hostAddrs = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((a) => a.family === "IPv4" && !a.internal).map((a) => a.address));
      const targets = [gateway, ...hostAddrs];
      const probe = `import os, socket, sys
print("interfaces", " ".join(sorted(os.listdir("/sys/class/net"))))
try:
    v6 = sorted(l.split()[5] for l in open("/proc/net/if_inet6"))
except OSError:
    v6 = []
print("ipv6 addresses on", " ".join(v6) or "none")
print("disable_ipv6", " ".join(n + "=" + open("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % n).read().strip() for n in sorted(os.listdir("/sys/class/net")) if os.path.exists("/proc/sys/net/ipv6/conf/" + n)))
for host in sys.argv[2:]:
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect((host, int(sys.argv[1]))); print("probe", host, "reached")
    except OSError as e:
        print("probe", host, "blocked", type(e).__name__, e.errno)
`;
      const got = await prepare({ Dockerfile: `FROM gridx/python:latest\nCOPY probe.py /probe.py\nRUN echo probing ${randomBytes(4).toString("hex")} && python3 /probe.py ${port} ${targets.join(" ")} > /tmp/probe.txt && cat /tmp/probe.txt\n`, "probe.py": probe }, envImages, sandbox);
      return { got, targets };
    }

    it("none: a step has only loopback, and reaches neither the host nor the bridge gateway", async () => {
      const { got, targets } = await probeBuild(images(), { build_network: "none" });
      expect(got.failure).toBeNull();
      expect(got.lines).toContain("interfaces lo");
      for (const host of targets) expect(got.lines).toContain(`probe ${host} blocked OSError 101`); // ENETUNREACH: no route at all
    });

    it("egress asked for, but the agent has no filtered network (or it says null): built with none, saying why", async () => {
      const nullNet: EgressNetworkFor = () => Promise.resolve(null);
      const withNull = await probeBuild(images({ egressNetwork: nullNet }), { build_network: "egress" });
      expect(withNull.got.lines).toContain("[gridx: build network: none (this agent's filtered egress network is not available)]");
      expect(withNull.got.lines).toContain("interfaces lo");
      const without = await probeBuild(images(), { build_network: "egress" });
      expect(without.got.lines).toContain("[gridx: build network: none (this agent has no filtered egress network)]");
      expect(without.got.lines).toContain("interfaces lo");
    });

    it("egress: a step runs on the agent's filtered network, which keeps it off the host", async () => {
      const egress = await EgressNetworks.start(docker, { instance, deny: [], off: false }, silentLogger);
      try {
        expect(egress.unavailable).toBeNull();
        const { got, targets } = await probeBuild(images({ egressNetwork: egress.buildNetwork }), { build_network: "egress", egress_allow: [] });
        expect(got.failure).toBeNull();
        expect(got.lines.find((l) => l.startsWith("[gridx: build network:"))).toMatch(/^\[gridx: build network: egress through \S+\]$/);
        expect(got.lines).toContain("interfaces eth0 lo");
        // The engine gives a step on a network without IPv6 no IPv6 at all: not even link-local on eth0.
        expect(got.lines).toContain("ipv6 addresses on none");
        expect(got.lines).toContain("disable_ipv6 eth0=1 lo=1");
        for (const host of targets) expect(got.lines.find((l) => l.startsWith(`probe ${host} `))).toMatch(/ blocked /);
      } finally {
        await egress.close();
      }
    });
  });

  describe("what the engine itself would fetch, outside the build's network", () => {
    let server: HttpServer;
    let port: number;
    /** Every request the server on the host's loopback got: a refused build must make none. */
    const requests: string[] = [];
    beforeAll(async () => {
      server = createHttpServer((req, res) => {
        requests.push(req.url ?? "");
        res.end("a secret of the host\n");
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it("refuses an ADD of a URL and a FROM of a registry on the host's loopback, export-subst included: image_error naming the line, and the server sees no request", async () => {
      const add = await prepare({ Dockerfile: `FROM gridx/python:latest\nRUN true\nadd \\\n  # the URL on the next line\n  http://127.0.0.1:${port}/add /x\n` });
      expect(add.failure?.reason).toBe("image_error");
      expect(add.failure?.message).toBe(
        `the environment's Dockerfile is refused: line 3: ADD http://127.0.0.1:${port}/add /x: the Docker engine fetches http://127.0.0.1:${port}/add itself, on the host's network, outside the build's network; add the file to the env repository, or fetch it in a RUN step`,
      );
      const from = await prepare({ Dockerfile: `FROM 127.0.0.1:${port}/acme/base:1\n` });
      expect(from.failure?.message).toMatch(/^the environment's Dockerfile is refused: line 1: FROM 127\.0\.0\.1:\d+\/acme\/base:1: \S+ has an IP address for its registry/);
      // git archive writes the commit's subject where the Dockerfile says $Format:%s$: the check reads what the engine gets.
      const subst = await prepare({ ".gitattributes": "Dockerfile export-subst\n", Dockerfile: "FROM gridx/python:latest\n$Format:%s$\n" }, images(), {}, true, `ADD http://127.0.0.1:${port}/subst /x`);
      repo.commit({ ".gitattributes": "" });
      expect(subst.failure?.message).toMatch(/line 2: ADD http:\/\/127\.0\.0\.1:\d+\/subst \/x: the Docker engine fetches/);
      expect(requests).toEqual([]);
      expect([await exists(add.image), await exists(from.image), await exists(subst.image)]).toEqual([false, false, false]);
    });

    it("refuses a base image whose ONBUILD trigger fetches a URL, before the builder runs it", async () => {
      const base = `gridx-test-onbuild-${instance}:1`;
      built.add(base);
      const dir = mkdtempSync(join(root, "onbuild-"));
      writeFileSync(join(dir, "Dockerfile"), `FROM gridx/python:latest\nONBUILD ADD http://127.0.0.1:${port}/onbuild /x\n`);
      await run("docker", ["build", "--quiet", "--tag", base, dir], { env: { ...process.env, DOCKER_BUILDKIT: "0" } });
      const got = await prepare({ Dockerfile: `FROM ${base}\nRUN true\n` });
      expect(got.failure?.reason).toBe("image_error");
      expect(got.failure?.message).toMatch(/^the environment build failed: base image gridx-test-onbuild-\S+ has ONBUILD ADD http:\/\/127\.0\.0\.1:\d+\/onbuild \/x: the Docker engine fetches/);
      expect(requests).toEqual([]);
    });

    it("refuses a base whose repository a command job pulled here with a login (the builder would use the copy here as it is), for an image built before the pull too", async () => {
      const privateRepo = `registry.test/acme/private-${instance}`;
      built.add(`${privateRepo}:1`);
      await run("docker", ["tag", "gridx/python:latest", `${privateRepo}:1`]);
      const loginPulls = new LoginPulls(join(mkdtempSync(join(root, "record-")), "pulled-with-login.json"));
      const envs = images({ loginPulls });
      // Nothing recorded: registry.test does not resolve, so this builds only because the builder takes the local copy.
      const before = await prepare({ Dockerfile: `FROM ${privateRepo}:1\nRUN echo on the local copy\n` }, envs);
      expect(before.failure).toBeNull();
      await loginPulls.add(privateRepo);
      const refused = await prepare({ Dockerfile: `FROM gridx/python:latest AS base\nFROM ${privateRepo}:1\n` }, envs);
      expect(refused.failure).toMatchObject({ reason: "image_error", message: expect.stringMatching(/^the environment's Dockerfile is refused: line 2: FROM registry\.test\/\S+: its repository was pulled on this worker with a registry login/) });
      const copied = await prepare({ Dockerfile: `FROM gridx/python:latest\nCOPY --from=${privateRepo}:1 /etc/hostname /h\n` }, envs);
      expect(copied.failure?.message).toMatch(/line 2: COPY --from \S+: its repository was pulled on this worker with a registry login/);
      expect((await prepareAt(before.commit, envs)).failure?.message).toMatch(/line 1: FROM registry\.test\/\S+: its repository was pulled/);
    });
  });

  describe("garbage collection", () => {
    it("removes the least recently used past the budget, never one held by a job or used by a container", async () => {
      // An agent of its own: what other tests built is not in its budget.
      const gcAgent = { agentName: `gc1-${instance}` };
      const envs = images(gcAgent);
      const held = await prepare({ Dockerfile: "FROM gridx/python:latest\nLABEL gc=held\n" }, envs, {}, true);
      const contained = await prepare({ Dockerfile: "FROM gridx/python:latest\nLABEL gc=contained\n" }, envs, {}, false);
      const free = await prepare({ Dockerfile: "FROM gridx/python:latest\nLABEL gc=free\n" }, envs, {}, false);
      const newest = await prepare({ Dockerfile: "FROM gridx/python:latest\nLABEL gc=newest\n" }, envs, {}, false);
      const container = (await run("docker", ["create", contained.image, "true"])).stdout.trim();
      try {
        const size = (await docker.inspectImage(free.image)).Size;
        // Only one of the four fits: the held one and the one a container uses cannot go, and the oldest free one goes first.
        const small = images({ ...gcAgent, cacheBytes: size + 1 });
        // Another job's hold on the held image (a restarted agent knows only its own jobs').
        await small.ensure({ url: repo.dir, commit: held.commit, dockerfile: "Dockerfile", key: "k" }, noBuild(held.commit), () => undefined, new AbortController().signal, {
          network: "none",
          egressAllow: [],
          held: () => true,
        });
        const removed = await small.collect();
        expect(removed.sort()).toEqual([free.image, newest.image].sort());
        expect([await exists(held.image), await exists(contained.image), await exists(free.image), await exists(newest.image)]).toEqual([true, true, false, false]);
        expect(Object.keys(JSON.parse(readFileSync(join(root, "env-images.json"), "utf8")).uses)).not.toContain(free.image);
      } finally {
        await run("docker", ["rm", "-f", container]);
      }
    });

    it("orders by last use kept across a restart, not by when images were built", async () => {
      const agent = { agentName: `gc2-${instance}`, usesFile: join(mkdtempSync(join(root, "uses-")), "env-images.json") };
      const first = images(agent);
      const a = await prepare({ Dockerfile: "FROM gridx/python:latest\nLABEL gc=a\n" }, first, {}, false);
      const b = await prepare({ Dockerfile: "FROM gridx/python:latest\nLABEL gc=b\n" }, first, {}, false);
      // A job uses a again: the more recent now, though built first.
      const aKey = envKey({ env_repo_url: repo.dir, env_commit_id: a.commit, dockerfile_path: "Dockerfile" });
      const reused = await first.ensure({ url: repo.dir, commit: a.commit, dockerfile: "Dockerfile", key: aKey }, noBuild(a.commit), () => undefined, new AbortController().signal, {
        network: "none",
        egressAllow: [],
        held: () => false,
      });
      expect(reused).toEqual({ image: a.image, how: "reused" });
      const restarted = images({ ...agent, cacheBytes: (await docker.inspectImage(a.image)).Size + 1 });
      expect((await restarted.warmKeys()).indexOf(aKey)).toBe(0);
      expect(await restarted.collect()).toEqual([b.image]);
      expect([await exists(a.image), await exists(b.image)]).toEqual([true, false]);
    });
  });
});
