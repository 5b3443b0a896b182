import { mkdtempSync, readFileSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { credentialEnv } from "../../agent/src/repos/git.ts";
import { GitCache, RepoError } from "../../agent/src/repos/git-cache.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { TestRepo } from "../support/git-repos.ts";

function setup(capBytes = 1 << 30) {
  const root = mkdtempSync(join(tmpdir(), "gridx-git-"));
  const cache = new GitCache({ root: join(root, "cache"), capBytes, timeoutMs: 30_000, allowLocal: true, log: silentLogger });
  return { root, cache };
}

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
    const strict = new GitCache({ root, capBytes: 1 << 30, timeoutMs: 10_000, allowLocal: false, log: silentLogger });
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
});
