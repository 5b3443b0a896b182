import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { envKey } from "../../protocol/index.ts";
import { agentToken, api, FakeAgent, newProject, uniquePool, waitForJob } from "./helpers.ts";

const sha = (c: string) => c.repeat(40);
const repo = { code_repo_url: "https://git.example.com/code.git", code_commit_id: "main", env_repo_url: "https://git.example.com/env.git", env_commit_id: sha("e") };
const submitRepo = (pool: string, over: Record<string, unknown> = {}) => api("/v1/jobs", { method: "POST", json: { kind: "repo", pool, repo, command: ["python3", "main.py"], ...over } });
const project = () => newProject();

describe("project secrets", () => {
  it("stores a value sealed, lists names only, replaces and deletes", async () => {
    const p = await project();
    const put = await api(`/v1/projects/${p}/secrets/git-token`, { method: "PUT", json: { value: "ghp_supersecret" } });
    expect(put.status).toBe(200);
    expect(put.json).toMatchObject({ project: p, name: "git-token" });
    expect(put.text).not.toContain("ghp_supersecret");

    const row = await env.DB.prepare("SELECT sealed FROM secrets WHERE project = ? AND name = ?").bind(p, "git-token").first<{ sealed: string }>();
    expect(row!.sealed).toMatch(/^v1\./);
    expect(row!.sealed).not.toContain("ghp_supersecret");
    expect(row!.sealed).not.toContain(btoa("ghp_supersecret"));

    await api(`/v1/projects/${p}/secrets/git-token`, { method: "PUT", json: { value: "ghp_rotated" } });
    const list = await api(`/v1/projects/${p}/secrets`);
    expect(list.json.secrets.map((s: { name: string }) => s.name)).toEqual(["git-token"]);
    expect(list.text).not.toContain("ghp_");

    expect((await api(`/v1/projects/${p}/secrets/git-token`, { method: "DELETE" })).status).toBe(204);
    expect((await api(`/v1/projects/${p}/secrets/git-token`, { method: "DELETE" })).json.error.code).toBe("not_found");
    expect((await api(`/v1/projects/${p}/secrets`)).json.secrets).toEqual([]);
  });

  it("refuses bad names, empty values and anonymous callers, naming the field", async () => {
    const bad = await api(`/v1/projects/${await project()}/secrets/-x`, { method: "PUT", json: { value: "v" } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.field).toBe("name");
    const empty = await api(`/v1/projects/${await project()}/secrets/ok`, { method: "PUT", json: { value: "" } });
    expect(empty.json.error.field).toBe("value");
    expect((await api(`/v1/projects/Upper/secrets`)).json.error.field).toBe("project");
    expect((await api(`/v1/projects/${await project()}/secrets`, { token: null })).status).toBe(401);
  });
});

describe("repo jobs", () => {
  it("validates the five fields and names the one that is wrong", async () => {
    const pool = uniquePool();
    const cases: [Record<string, unknown>, string][] = [
      [{ repo: { ...repo, code_repo_url: "ftp://x/y" } }, "repo.code_repo_url"],
      [{ repo: { ...repo, env_commit_id: "--upload-pack=evil" } }, "repo.env_commit_id"],
      [{ repo: { ...repo, dockerfile_path: "../Dockerfile" } }, "repo.dockerfile_path"],
      [{ repo: { ...repo, code_repo_url: "https://u:p@h/x.git" } }, "repo.code_repo_url"],
      [{ command: [] }, "command"],
    ];
    const answers = [];
    for (const [over] of cases) {
      const res = await submitRepo(pool, over);
      answers.push([res.status, res.json.error?.field]);
    }
    expect(answers).toEqual(cases.map(([, field]) => [400, field]));
  });

  it("refuses a credential its project does not have", async () => {
    const res = await submitRepo(uniquePool(), { project: await project(), repo: { ...repo, code_credentials: "nope" } });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe("repo.code_credentials");
    expect(res.json.error.message).toMatch(/no secret nope/);
  });

  it("hands the decrypted credentials to the assigned agent only, and records the commits that ran", async () => {
    const pool = uniquePool();
    const p = await project();
    await api(`/v1/projects/${p}/secrets/code`, { method: "PUT", json: { value: "tok-code" } });
    await api(`/v1/projects/${p}/secrets/env`, { method: "PUT", json: { value: "tok-env" } });
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submitRepo(pool, { project: p, repo: { ...repo, code_credentials: "code", env_credentials: "env" } })).json;
    expect(JSON.stringify(job)).not.toContain("tok-");

    const assign = await agent.next("assign_job");
    expect(assign.payload.credentials).toEqual({ code: "tok-code", env: "tok-env" });
    expect(assign.payload.spec.task).toMatchObject({ kind: "repo", command: ["python3", "main.py"] });
    const stored = await env.DB.prepare("SELECT spec FROM jobs WHERE id = ?").bind(job.id).first<{ spec: string }>();
    expect(stored!.spec).not.toContain("tok-");

    const resolved = { code_commit_id: sha("c"), env_commit_id: sha("e"), image: "gridx-env:abc" };
    agent.send({ type: "job_started", payload: { job_id: job.id, attempt: 1, resolved } });
    expect((await waitForJob(job.id, (j) => j.status === "running")).resolved).toEqual(resolved);
    agent.send({ type: "job_result", payload: { job_id: job.id, attempt: 1, exit_code: 0, failure_reason: null, message: null, resolved } });
    const done = await waitForJob(job.id, (j) => j.status === "completed");
    expect(done.resolved).toEqual(resolved);
    expect(done.kind).toBe("repo");
    agent.close();
  });

  it("sends a job to the worker that has its environment warm, and learns what a worker warms", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    // "a" sorts first, so without the warm cache first-idle would pick it.
    const a = await FakeAgent.join(token, { name: "a" });
    const b = await FakeAgent.join(token, { name: "b", warm: { envs: [envKey({ ...repo, dockerfile_path: "Dockerfile" })], repos: [] } });
    const first = (await submitRepo(pool)).json;
    expect((await b.agent.next("assign_job")).payload.job_id).toBe(first.id);

    // Another environment: b is busy, so a takes it, and says it now has it warm.
    const other = { ...repo, env_commit_id: sha("f") };
    const second = (await submitRepo(pool, { repo: other })).json;
    expect((await a.agent.next("assign_job")).payload.job_id).toBe(second.id);
    a.agent.send({ type: "warm_cache", payload: { envs: [envKey({ ...other, dockerfile_path: "Dockerfile" })], repos: [] } });
    a.agent.send({ type: "job_result", payload: { job_id: second.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    b.agent.send({ type: "job_result", payload: { job_id: first.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    await waitForJob(first.id, (j) => j.status === "completed");
    await waitForJob(second.id, (j) => j.status === "completed");

    const third = (await submitRepo(pool, { repo: other })).json;
    expect((await a.agent.next("assign_job")).payload.job_id).toBe(third.id);
    expect(await b.agent.receives("assign_job")).toBe(false);
    a.agent.close();
    b.agent.close();
  });
});
