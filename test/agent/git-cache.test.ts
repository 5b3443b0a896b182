import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { credentialEnv, subcommand } from "../../agent/src/repos/git.ts";
import { GitCache, RepoError } from "../../agent/src/repos/git-cache.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { TestRepo } from "../support/git-repos.ts";
import { startGitServer } from "../e2e/git-server.ts";
import { startSshd } from "../e2e/sshd.ts";

const AUTH_TTL_MS = 300_000;

function setup(capBytes = 1 << 30) {
  const root = mkdtempSync(join(tmpdir(), "gridx-git-"));
  const clock = { now: 1_000_000 };
  const cache = new GitCache({ root: join(root, "cache"), capBytes, timeoutMs: 30_000, allowLocal: true, authTtlMs: AUTH_TTL_MS, now: () => clock.now, log: silentLogger });
  return { root, cache, clock };
}

describe("git's messages", () => {
  it("name the subcommand, not a folder given to an option before it", () => {
    expect(subcommand(["--git-dir", "/var/lib/gridx/git/ab.git", "fetch", "--quiet", "origin"])).toBe("fetch");
    expect(subcommand(["-c", "a=b", "-C", "/srv", "ls-remote", "--heads"])).toBe("ls-remote");
    expect(subcommand(["init", "--bare", "/x"])).toBe("init");
  });
});

describe("GitCache (real git)", () => {
  it("resolves a branch and a commit id, and exports the tree without .git", async () => {
    const { root, cache } = setup();
    const repo = TestRepo.create(join(root, "code"));
    const first = repo.commit({ "main.py": "print(1)\n", "pkg/util.py": "X = 1\n" });
    const byBranch = await cache.resolve(repo.dir, "main", undefined);
    expect(byBranch.commit).toBe(first);
    expect(byBranch.fetchedObjects).toBeGreaterThan(0);
    const out = join(root, "out");
    await cache.export(repo.dir, first, out);
    expect(readFileSync(join(out, "pkg/util.py"), "utf8")).toBe("X = 1\n");
    expect(readdirSync(out).sort()).toEqual(["main.py", "pkg"]);
  });

  it("costs no fetch for a cached commit, and fetches only the new objects of a new commit", async () => {
    const { root, cache } = setup();
    const repo = TestRepo.create(join(root, "code"));
    const big = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}.txt`, `file ${i}\n`]));
    const c1 = repo.commit(big);
    const first = await cache.resolve(`file://${repo.dir}`, c1, undefined);
    expect(first.fetchedObjects).toBe(22); // 20 blobs, 1 tree, 1 commit
    const mirror = readdirSync(join(root, "cache")).find((n) => n.endsWith(".git"))!;
    const born = statSync(join(root, "cache", mirror)).birthtimeMs;

    expect(await cache.resolve(`file://${repo.dir}`, c1, undefined)).toEqual({ commit: c1, fetchedObjects: 0 });

    const c2 = repo.commit({ "f3.txt": "changed\n" });
    // One blob, the root tree and the commit: nothing the mirror already had.
    expect(await cache.resolve(`file://${repo.dir}`, c2, undefined)).toEqual({ commit: c2, fetchedObjects: 3 });
    expect(statSync(join(root, "cache", mirror)).birthtimeMs).toBe(born);
  });

  it("names a commit or branch that does not exist", async () => {
    const { root, cache } = setup();
    const repo = TestRepo.create(join(root, "code"));
    repo.commit({ a: "1" });
    const ghost = "0123456789abcdef0123456789abcdef01234567";
    await expect(cache.resolve(repo.dir, ghost, undefined)).rejects.toThrow(new RegExp(`${ghost} does not exist in ${repo.dir}`));
    await expect(cache.resolve(repo.dir, "no-such-branch", undefined)).rejects.toBeInstanceOf(RepoError);
    await expect(cache.resolve(join(root, "missing"), "main", undefined)).rejects.toThrow(/could not fetch|does not exist/);
  });

  it("refuses local paths unless the operator allows them", async () => {
    const root = mkdtempSync(join(tmpdir(), "gridx-git-"));
    const strict = new GitCache({ root, capBytes: 1 << 30, timeoutMs: 10_000, allowLocal: false, authTtlMs: AUTH_TTL_MS, log: silentLogger });
    await expect(strict.resolve("/srv/repo", "main", undefined)).rejects.toThrow(/--allow-local-repos/);
    await expect(strict.resolve("file:///srv/repo", "main", undefined)).rejects.toThrow(/not allowed/);
  });

  it("serialises concurrent fetches of one repository and gets every caller its commit", async () => {
    const { root, cache } = setup();
    const repo = TestRepo.create(join(root, "code"));
    const commits = [repo.commit({ a: "1" }), repo.commit({ a: "2" }), repo.commit({ a: "3" })];
    repo.git("branch", "b0", commits[0]!);
    repo.git("branch", "b1", commits[1]!);
    const got = await Promise.all(["b0", "b1", "main", "b0", commits[2]!].map((ref) => cache.resolve(repo.dir, ref, undefined)));
    expect(got.map((g) => g.commit)).toEqual([commits[0], commits[1], commits[2], commits[0], commits[2]]);
  });

  it("evicts the least recently used repository past its size cap, never the one just fetched", async () => {
    const { root, cache } = setup(1); // any repository is over a one-byte cap
    const a = TestRepo.create(join(root, "a"));
    const b = TestRepo.create(join(root, "b"));
    a.commit({ x: "a" });
    b.commit({ x: "b" });
    await cache.resolve(a.dir, "main", undefined);
    expect(await cache.urls()).toEqual([a.dir]);
    await cache.resolve(b.dir, "main", undefined);
    expect(await cache.urls()).toEqual([b.dir]);
  });
});

describe("GitCache authorization: a cached commit goes only to jobs the origin lets in (real git over HTTP and SSH)", () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  async function served() {
    const env = setup();
    const auth = { user: "gridx", password: "right-token" };
    const server = await startGitServer(env.root, auth);
    stops.push(server.stop);
    const mirrors = () => readdirSync(join(env.root, "cache")).filter((n) => n.endsWith(".git"));
    /** The requests `fn` made of the origin. */
    const asked = async (fn: () => Promise<unknown>) => {
      const before = server.requests.length;
      await fn();
      return server.requests.slice(before);
    };
    return { ...env, auth, server, mirrors, asked };
  }

  it("private: refuses no credential and a wrong one after the right one cached the commit, and asks again after the TTL", async () => {
    const { root, cache, clock, auth, server, asked } = await served();
    const repo = TestRepo.create(join(root, "private", "code"));
    const commit = repo.commit({ "secret.py": "KEY = 1\n" });
    const url = `${server.url}/private/code`;
    const right = `${auth.user}:${auth.password}`;

    const a = await cache.resolve(url, commit, right);
    expect(a.fetchedObjects).toBe(3);

    const anonymous = `${url} needs credentials: the origin refused a request without them (name a project secret in code_credentials or env_credentials)`;
    const wrong = `the origin refused this job's credentials for ${url}`;
    for (const [credential, message] of [[undefined, anonymous], [undefined, anonymous], ["gridx:wrong-token", wrong]] as const) {
      let error: unknown;
      const seen = await asked(() => cache.resolve(url, commit, credential).catch((e: unknown) => (error = e)));
      expect(error).toBeInstanceOf(RepoError);
      expect((error as Error).message).toBe(message);
      // The origin heard this job itself; a refusal is never remembered as a pass.
      expect(seen).toContain("GET /private/code/info/refs");
    }

    // The right credential's fetch is its proof: within the TTL, no request at all.
    expect(await asked(async () => expect(await cache.resolve(url, commit, right)).toEqual({ commit, fetchedObjects: 0 }))).toEqual([]);

    clock.now += AUTH_TTL_MS;
    const again = await asked(async () => expect(await cache.resolve(url, commit, right)).toEqual({ commit, fetchedObjects: 0 }));
    expect(again[0]).toBe("GET /private/code/info/refs");
    expect(await asked(() => cache.resolve(url, commit, right))).toEqual([]);

    // A revoked token keeps its proof until the TTL runs out, and no longer.
    auth.password = "rotated";
    expect(await cache.resolve(url, commit, right)).toEqual({ commit, fetchedObjects: 0 });
    clock.now += AUTH_TTL_MS;
    await expect(cache.resolve(url, commit, right)).rejects.toThrow(`the origin refused this job's credentials for ${url}`);
    await expect(cache.resolve(url, "main", right)).rejects.toThrow(`the origin refused this job's credentials for ${url}`);
  });

  it("public: jobs without credentials share one mirror; the second fetches nothing and asks nothing", async () => {
    const { root, cache, clock, server, mirrors, asked } = await served();
    const repo = TestRepo.create(join(root, "public", "code"));
    const commit = repo.commit({ "main.py": "print(1)\n" });
    const url = `${server.url}/public/code`;

    expect((await cache.resolve(url, commit, undefined)).fetchedObjects).toBe(3);
    expect(await asked(async () => expect(await cache.resolve(url, commit, undefined)).toEqual({ commit, fetchedObjects: 0 }))).toEqual([]);
    // The anonymous proof says the repository is public: it serves a job with any credential.
    expect(await asked(() => cache.resolve(url, commit, "someone:else"))).toEqual([]);
    expect(mirrors()).toHaveLength(1);

    clock.now += AUTH_TTL_MS;
    const renewed = await asked(async () => expect(await cache.resolve(url, commit, undefined)).toEqual({ commit, fetchedObjects: 0 }));
    expect(renewed[0]).toBe("GET /public/code/info/refs");
    expect(await asked(() => cache.resolve(url, commit, undefined))).toEqual([]);
  });

  it("a job without credentials never borrows the agent user's ~/.netrc", async () => {
    const { root, cache, auth, server } = await served();
    TestRepo.create(join(root, "private", "code")).commit({ "secret.py": "KEY = 3\n" });
    const home = join(root, "home");
    mkdirSync(home);
    writeFileSync(join(home, ".netrc"), `machine 127.0.0.1 login ${auth.user} password ${auth.password}\n`, { mode: 0o600 });
    const savedHome = process.env.HOME;
    process.env.HOME = home;
    try {
      await expect(cache.resolve(`${server.url}/private/code`, "main", undefined)).rejects.toThrow(`${server.url}/private/code needs credentials`);
    } finally {
      process.env.HOME = savedHome;
    }
  });

  it("ssh: a cached commit needs the job's own key", async () => {
    const { root, cache } = setup();
    const sshd = await startSshd(root);
    stops.push(sshd.stop);
    const repo = TestRepo.create(join(root, "private-ssh"));
    const commit = repo.commit({ "secret.py": "KEY = 2\n" });
    const url = `ssh://${sshd.user}@127.0.0.1:${sshd.port}${repo.dir}`;
    const key = readFileSync(sshd.clientKey, "utf8");
    const otherKey = join(root, "other_ed25519");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", otherKey]);

    expect((await cache.resolve(url, commit, key)).fetchedObjects).toBe(3);
    await expect(cache.resolve(url, commit, readFileSync(otherKey, "utf8"))).rejects.toThrow(`the origin refused this job's credentials for ${url}`);

    await expect(cache.resolve(url, commit, undefined)).rejects.toThrow(`${url} needs credentials`);
    expect(await cache.resolve(url, commit, key)).toEqual({ commit, fetchedObjects: 0 });
  });
});

describe("credentialEnv", () => {
  it("puts an https token in a header scoped to the URL, never on the command line", async () => {
    const { env } = await credentialEnv("https://git.example.com/x.git", "tok123", "/kh");
    expect(env.GIT_CONFIG_KEY_0).toBe("http.https://git.example.com/x.git.extraHeader");
    expect(env.GIT_CONFIG_VALUE_0).toBe(`Authorization: Basic ${Buffer.from("x-access-token:tok123").toString("base64")}`);
    const withUser = await credentialEnv("https://h/x", "alice:pw", "/kh");
    expect(withUser.env.GIT_CONFIG_VALUE_0).toBe(`Authorization: Basic ${Buffer.from("alice:pw").toString("base64")}`);
  });

  it("writes an ssh key to a 0600 file that cleanup removes", async () => {
    const { env, cleanup } = await credentialEnv("git@h:org/x.git", "-----BEGIN KEY-----\nabc\n-----END KEY-----", "/state/known_hosts");
    const keyFile = /-i (\S+)/.exec(env.GIT_SSH_COMMAND!)![1]!;
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(env.GIT_SSH_COMMAND).toContain("UserKnownHostsFile=/state/known_hosts");
    await cleanup();
    expect(() => statSync(keyFile)).toThrow(/ENOENT/);
  });

  it("offers ssh no key at all without a credential, so the agent user's own keys never speak for a job", async () => {
    // ssh finds default keys through the passwd home, not $HOME, so a test cannot plant one there.
    const { env } = await credentialEnv("git@h:org/x.git", undefined, "/state/known_hosts");
    expect(env.GIT_SSH_COMMAND).toMatch(/-o PubkeyAuthentication=no/);
    expect(env.GIT_SSH_COMMAND).toMatch(/-o BatchMode=yes/);
    expect(env.GIT_SSH_COMMAND).not.toMatch(/-i /);
  });
});
