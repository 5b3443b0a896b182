import { describe, expect, it } from "vitest";
import { envKey, JobRequest, RepoSource, repoKey } from "../../protocol/index.ts";

const sha = "0123456789abcdef0123456789abcdef01234567";
const repo = { code_repo_url: "https://git.example.com/team/code.git", code_commit_id: sha, env_repo_url: "https://git.example.com/team/env.git", env_commit_id: "main" };

describe("RepoSource", () => {
  it("takes each URL form: https, http, ssh, scp-like, git, file and absolute paths", () => {
    const good = ["https://h/x.git", "http://127.0.0.1:9/x", "ssh://git@h:22/x.git", "git@github.com:org/repo.git", "git://h/x", "file:///srv/x", "/srv/x"];
    expect(good.filter((url) => !urlOk(url))).toEqual([]);
  });

  it("refuses URLs that are not repositories, that could pass as git options, or that hold a password", () => {
    const bad = ["", "ftp://h/x", "relative/path", "-uhttps://h/x", "https://h/x y", "https://user:pw@h/x.git", "https://h"];
    expect(bad.filter(urlOk)).toEqual([]);
  });

  it("takes commit ids, branches and tags, never an option or a path trick", () => {
    expect([sha, "main", "release/1.2", "v1.0.0", "feature_x-2"].filter((ref) => !refOk(ref))).toEqual([]);
    expect(["-main", "--upload-pack=x", "a..b", "a//b", "/main", "main/", "x.lock", "a@{1}", ".hidden", "a b", ""].filter(refOk)).toEqual([]);
  });

  it("takes a relative Dockerfile path, defaulting to Dockerfile, and refuses '..' and absolute paths", () => {
    expect(RepoSource.parse(repo).dockerfile_path).toBe("Dockerfile");
    expect(RepoSource.parse({ ...repo, dockerfile_path: "docker/gpu.Dockerfile" }).dockerfile_path).toBe("docker/gpu.Dockerfile");
    expect(["../Dockerfile", "a/../../b", "/etc/Dockerfile", "a//b"].filter((p) => RepoSource.safeParse({ ...repo, dockerfile_path: p }).success)).toEqual([]);
  });

  it("sends credentials only over https or to this machine", () => {
    expect(RepoSource.safeParse({ ...repo, code_credentials: "token" }).success).toBe(true);
    expect(RepoSource.safeParse({ ...repo, code_repo_url: "http://127.0.0.1:8080/x.git", code_credentials: "token" }).success).toBe(true);
    const plain = RepoSource.safeParse({ ...repo, env_repo_url: "http://git.example.com/x.git", env_credentials: "token" });
    expect(plain.success).toBe(false);
    expect(plain.error?.issues[0]?.path).toEqual(["env_credentials"]);
  });
});

const refOk = (ref: string) => RepoSource.safeParse({ ...repo, code_commit_id: ref }).success;
const urlOk = (url: string) => RepoSource.safeParse({ ...repo, code_repo_url: url }).success;

describe("a repo job request", () => {
  it("becomes a task with the five fields and the argv", () => {
    const spec = JobRequest.parse({ kind: "repo", repo, command: ["python3", "train.py", "--epochs", "3"] });
    expect(spec.task).toEqual({ kind: "repo", repo: { ...repo, dockerfile_path: "Dockerfile", project: "default" }, command: ["python3", "train.py", "--epochs", "3"] });
  });

  it("names the missing argv", () => {
    const r = JobRequest.safeParse({ kind: "repo", repo, command: [] });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(["command"]);
  });
});

describe("warm-cache keys", () => {
  it("are stable, short, and differ when any env field differs", () => {
    const a = envKey({ env_repo_url: "https://h/env", env_commit_id: "main", dockerfile_path: "Dockerfile" });
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(envKey({ env_repo_url: "https://h/env", env_commit_id: "main", dockerfile_path: "Dockerfile" })).toBe(a);
    expect(envKey({ env_repo_url: "https://h/env", env_commit_id: "dev", dockerfile_path: "Dockerfile" })).not.toBe(a);
    expect(envKey({ env_repo_url: "https://h/env", env_commit_id: "main", dockerfile_path: "gpu/Dockerfile" })).not.toBe(a);
    expect(repoKey("https://h/é")).not.toBe(repoKey("https://h/e"));
    // FNV-1a 64 of "a", a published test vector.
    expect(repoKey("a")).toBe("af63dc4c8601ec8c");
  });
});
