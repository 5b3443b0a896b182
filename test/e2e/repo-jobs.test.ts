import { mkdtempSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { envKey } from "../../protocol/index.ts";
import { runCommand, type AgentProcess } from "../../scripts/local-grid.ts";
import { TestRepo } from "../support/git-repos.ts";
import { api, cp, isDone, launchOnlineAgent, newProject, submit, uniqueName, waitForJob } from "./helpers.ts";
import { startGitServer, type GitServer } from "./git-server.ts";
import { startSshd } from "./sshd.ts";

type Line = { stream: string; text: string };
const logLines = async (id: string) => (await api(`/v1/jobs/${id}/logs`)).json.lines as Line[];
const texts = (lines: Line[], stream: string) => lines.filter((l) => l.stream === stream).map((l) => l.text);

const MAIN_PY = `import os
print("data:", open("data.txt").read().strip())
print("cwd:", os.getcwd())
print("env marker:", open("/opt/env-marker").read().strip())
try:
    open("/work/code/new.txt", "w")
    print("code mount: writable")
except OSError as e:
    print("code mount: read-only" if e.errno == 30 else f"code mount: {e}")
`;

const pool = uniqueName("repo");
const gitAuth = { user: "gridx", password: "s3cret-git-token" };
let server: GitServer;
let code: TestRepo;
let env: TestRepo;
let privateCode: TestRepo;
let agent: AgentProcess;
let worker: { id: string };
let envCommit: string;

const repoJob = (repo: Record<string, unknown>, command = ["python3", "main.py"], project = "default") =>
  submit({ kind: "repo", pool, project, repo: { code_repo_url: `${server.url}/code`, env_repo_url: `${server.url}/env`, env_commit_id: envCommit, ...repo }, command, limits: { timeout_s: 120 } });

beforeAll(async () => {
  const root = mkdtempSync(join(cp().stateDir, "git-"));
  server = await startGitServer(root, gitAuth);
  code = TestRepo.create(join(root, "code"));
  env = TestRepo.create(join(root, "env"));
  privateCode = TestRepo.create(join(root, "private", "code"));
  envCommit = env.commit({ "docker/Dockerfile": "FROM python:3.11-slim-bookworm\nRUN echo env-one > /opt/env-marker\n" });
  privateCode.commit({ "main.py": 'print("private code ran")\n' });
  agent = await launchOnlineAgent({ pool, name: uniqueName("repo-agent"), slots: 2 });
  worker = (await api(`/v1/workers?pool=${pool}`)).json.workers[0];
});

afterAll(async () => {
  await agent?.stop();
  await server?.stop();
});

describe("repo jobs on a real agent, real git and real Docker", () => {
  it("builds the environment, runs the code commit read-only at /work/code, and records the commits", async () => {
    const c1 = code.commit({ "main.py": MAIN_PY, "data.txt": "first\n" });
    const job = await repoJob({ code_commit_id: "main", dockerfile_path: "docker/Dockerfile" });
    const done = await waitForJob(job.id, isDone, 180_000);
    expect(done).toMatchObject({ status: "completed", exit_code: 0 });
    expect(done.resolved).toMatchObject({ code_commit_id: c1, env_commit_id: envCommit });
    expect(done.resolved.image).toMatch(/^gridx-env:[0-9a-f]{32}$/);
    expect(done.stdout).toContain("data: first");
    expect(done.stdout).toContain("cwd: /work/code");
    expect(done.stdout).toContain("env marker: env-one");
    expect(done.stdout).toContain("code mount: read-only");

    const lines = await logLines(job.id);
    expect(texts(lines, "build").join("\n")).toMatch(/RUN echo env-one/);
    expect(texts(lines, "system").join("\n")).toContain(`environment image ${done.resolved.image} built`);
    // The worker now reports this environment warm, so the scheduler can send its next job here.
    const w = (await api(`/v1/workers?pool=${pool}`)).json.workers.find((x: { id: string }) => x.id === worker.id);
    expect(w.warm.envs).toContain(envKey({ env_repo_url: `${server.url}/env`, env_commit_id: envCommit, dockerfile_path: "docker/Dockerfile" }));
  });

  it("reuses the image for the same environment and fetches only the new objects of a new code commit", async () => {
    const c2 = code.commit({ "data.txt": "second\n" });
    const job = await repoJob({ code_commit_id: c2, dockerfile_path: "docker/Dockerfile" });
    const done = await waitForJob(job.id, isDone, 120_000);
    expect(done).toMatchObject({ status: "completed", resolved: { code_commit_id: c2 } });
    expect(done.stdout).toContain("data: second");
    const lines = await logLines(job.id);
    expect(texts(lines, "build")).toEqual([]);
    const system = texts(lines, "system").join("\n");
    expect(system).toContain("reused, no build");
    // The commit, its root tree and the changed blob: three objects, not the repository again.
    expect(system).toContain(`is ${c2} (fetched 3 new object(s))`);
    expect(system).toMatch(/environment .* is [0-9a-f]{40} \(from the local cache\)/);
  });

  it("fails a commit that does not exist with input_error naming it", async () => {
    const ghost = "0123456789abcdef0123456789abcdef01234567";
    const job = await repoJob({ code_commit_id: ghost, dockerfile_path: "docker/Dockerfile" });
    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "failed", failure_reason: "input_error" });
    expect(done.failure_message).toContain(`${ghost} does not exist`);
    const branch = await waitForJob((await repoJob({ code_commit_id: "no-such-branch", dockerfile_path: "docker/Dockerfile" })).id, isDone);
    expect(branch).toMatchObject({ status: "failed", failure_reason: "input_error" });
    expect(branch.failure_message).toContain("no-such-branch does not exist");
  });

  it("fails a broken Dockerfile with image_error and the build log", async () => {
    const broken = env.commit({ "Dockerfile": "FROM python:3.11-slim-bookworm\nRUN echo about-to-fail && exit 3\n" });
    const job = await repoJob({ code_commit_id: "main", env_commit_id: broken });
    const done = await waitForJob(job.id, isDone, 120_000);
    expect(done).toMatchObject({ status: "failed", failure_reason: "image_error" });
    expect(done.failure_message).toMatch(/environment build failed: .*returned a non-zero code: 3/);
    const build = texts(await logLines(job.id), "build").join("\n");
    expect(build).toContain("about-to-fail");
    expect(build).toMatch(/environment build failed/);
  });

  it("builds a new environment once for two jobs that need it at the same time", async () => {
    // A build of a few seconds, so the second job's preparation comes while the first one's build runs.
    const fresh = env.commit({ "Dockerfile": "FROM python:3.11-slim-bookworm\nRUN sleep 4 && python3 -c 'import uuid; print(uuid.uuid4())' > /opt/env-marker\n" });
    const jobs = await Promise.all([repoJob({ code_commit_id: "main", env_commit_id: fresh }), repoJob({ code_commit_id: "main", env_commit_id: fresh })]);
    const done = await Promise.all(jobs.map((j) => waitForJob(j.id, isDone, 180_000)));
    expect(done.map((d) => d.status)).toEqual(["completed", "completed"]);
    expect(done[0].worker_id).toBe(done[1].worker_id);
    const said = await Promise.all(jobs.map(async (j) => texts(await logLines(j.id), "system").find((t) => t.includes("environment image"))));
    expect(said.filter((t) => t?.endsWith(" built]"))).toHaveLength(1);
    // The other waited for that build (or, on a machine so loaded that it came after it, reused its image): never a second build.
    expect(said.filter((t) => t?.includes("this job waited for it") || t?.includes("reused, no build"))).toHaveLength(1);
    const markers = done.map((d) => /env marker: (\S+)/.exec(d.stdout)?.[1]);
    expect(markers[0]).toBe(markers[1]);
    const images = await runCommand("docker", ["images", "-q", "--filter", `label=gridx.env_commit=${fresh}`]);
    expect(images.split("\n").filter(Boolean)).toHaveLength(1);
  });

  it("fetches a private repository with a project secret, and never shows the secret", async () => {
    const project = await newProject();
    const put = await api(`/v1/projects/${project}/secrets/git`, { method: "PUT", json: { value: `${gitAuth.user}:${gitAuth.password}` } });
    expect(put.status).toBe(200);
    const withSecret = await repoJob({ code_repo_url: `${server.url}/private/code`, code_commit_id: "main", dockerfile_path: "docker/Dockerfile", code_credentials: "git" }, undefined, project);
    const ok = await waitForJob(withSecret.id, isDone, 120_000);
    expect(ok).toMatchObject({ status: "completed" });
    expect(ok.stdout).toContain("private code ran");

    const without = await repoJob({ code_repo_url: `${server.url}/private/code`, code_commit_id: "main", dockerfile_path: "docker/Dockerfile" });
    const refused = await waitForJob(without.id, isDone, 60_000);
    expect(refused).toMatchObject({ status: "failed", failure_reason: "input_error" });
    expect(refused.failure_message).toContain(`${server.url}/private/code needs credentials`);

    // The commit is in this worker's mirror now; a job of another project without the secret asks
    // for it by id, and the origin is asked (and refuses) instead of the cache answering.
    const requestsBefore = server.requests.length;
    const other = await repoJob({ code_repo_url: `${server.url}/private/code`, code_commit_id: ok.resolved.code_commit_id, dockerfile_path: "docker/Dockerfile" }, undefined, await newProject());
    const cached = await waitForJob(other.id, isDone, 60_000);
    expect(cached).toMatchObject({ status: "failed", failure_reason: "input_error", worker_id: ok.worker_id });
    expect(cached.failure_message).toContain(`${server.url}/private/code needs credentials`);
    expect(cached.stdout ?? "").not.toContain("private code ran");
    expect(server.requests.slice(requestsBefore)).toContain("GET /private/code/info/refs");

    for (const id of [withSecret.id, without.id, other.id]) {
      const everything = JSON.stringify({ job: (await api(`/v1/jobs/${id}`)).json, logs: await logLines(id) });
      expect(everything).not.toContain(gitAuth.password);
      expect(everything).not.toContain(Buffer.from(`${gitAuth.user}:${gitAuth.password}`).toString("base64"));
    }
    expect(agent.output()).not.toContain(gitAuth.password);
  });

  it("fetches over ssh with a private key kept as a project secret", async () => {
    const sshd = await startSshd(cp().stateDir);
    try {
      const project = await newProject();
      await api(`/v1/projects/${project}/secrets/deploy-key`, { method: "PUT", json: { value: readFileSync(sshd.clientKey, "utf8") } });
      const url = `ssh://${sshd.user}@127.0.0.1:${sshd.port}${privateCode.dir}`;
      const job = await repoJob({ code_repo_url: url, code_commit_id: "main", dockerfile_path: "docker/Dockerfile", code_credentials: "deploy-key" }, undefined, project);
      const done = await waitForJob(job.id, isDone, 120_000);
      expect(done).toMatchObject({ status: "completed" });
      expect(done.stdout).toContain("private code ran");
      expect(JSON.stringify(await logLines(job.id))).not.toContain("PRIVATE KEY");
    } finally {
      await sshd.stop();
    }
  });
});
