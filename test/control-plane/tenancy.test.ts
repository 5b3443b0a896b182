import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { pollUntil } from "../helpers/poll.ts";
import { CloseCode, FATAL_CLOSES } from "../../protocol/index.ts";
import { agentToken, api, FakeAgent, newProject, submit, uniquePool, userToken } from "./helpers.ts";

/** One project with a user of each role, and a user who belongs to another project only. */
interface Team {
  project: string;
  owner: string;
  member: string;
  viewer: string;
  outsider: string;
  memberName: string;
}

async function team(): Promise<Team> {
  const project = await newProject();
  const [owner, member, viewer, outsider] = await Promise.all([
    userToken({ project, role: "owner" }),
    userToken({ project, role: "member" }),
    userToken({ project, role: "viewer" }),
    userToken({ project: await newProject(), role: "member" }),
  ]);
  return { project, owner: owner.token, member: member.token, viewer: viewer.token, outsider: outsider.token, memberName: member.user };
}

const sha = "a".repeat(64);

/** The id of what a setup request created; setup that fails stops the suite with the answer. */
function created(res: { status: number; text: string; json: { id: string } }): string {
  if (res.status !== 201) throw new Error(`setup: ${res.status} ${res.text}`);
  return res.json.id;
}

describe("jobs, logs, artifacts and attempts follow the role", () => {
  let t: Team;
  let jobId: string;
  beforeAll(async () => {
    t = await team();
    jobId = created(await api("/v1/jobs", { method: "POST", token: t.member, json: { kind: "python", python: { script: "print(1)" }, project: t.project, pool: uniquePool(), name: "nightly sweep", tags: ["team=ml", "run=7"] } }));
  });

  it("shows the job's project, name, tags and who submitted it", async () => {
    const job = (await api(`/v1/jobs/${jobId}`, { token: t.viewer })).json;
    expect(job).toMatchObject({ project: t.project, name: "nightly sweep", tags: ["team=ml", "run=7"], submitted_by: t.memberName, pending_reason: `no worker of pool ${job.pool} is online` });
  });

  it("answers 404 to a non-member on every job route, as for a job that does not exist", async () => {
    for (const path of ["", "/logs", "/artifacts", "/attempts", "/artifacts/out.txt"]) {
      const res = await api(`/v1/jobs/${jobId}${path}`, { token: t.outsider });
      expect([path, res.status, res.json.error.message]).toEqual([path, 404, `no job ${jobId}`]);
    }
    expect((await api(`/v1/jobs/${jobId}/cancel`, { method: "POST", token: t.outsider })).status).toBe(404);
  });

  it("lets a viewer read but not submit or cancel, with a 403 naming the role needed", async () => {
    for (const path of ["", "/logs", "/artifacts", "/attempts"]) expect((await api(`/v1/jobs/${jobId}${path}`, { token: t.viewer })).status).toBe(200);
    const cancel = await api(`/v1/jobs/${jobId}/cancel`, { method: "POST", token: t.viewer });
    expect(cancel.status).toBe(403);
    expect(cancel.json.error.message).toMatch(/needs the member role in project .* you are a viewer/);
    const sub = await api("/v1/jobs", { method: "POST", token: t.viewer, json: { kind: "python", python: { script: "1" }, project: t.project } });
    expect(sub.status).toBe(403);
    expect(sub.json.error.message).toMatch(/member role/);
  });

  it("refuses a submit into a project the caller is not in as a 404 on the field", async () => {
    const res = await api("/v1/jobs", { method: "POST", token: t.outsider, json: { kind: "python", python: { script: "1" }, project: t.project } });
    expect(res.status).toBe(404);
    expect(res.json.error).toMatchObject({ code: "not_found", field: "project" });
    const unknown = await api("/v1/jobs", { method: "POST", json: { kind: "python", python: { script: "1" }, project: "no-such-project" } });
    expect(unknown.json.error).toMatchObject({ code: "not_found", field: "project" });
  });

  it("lists only the projects the caller reads, filtered by project, tag, name and submitter", async () => {
    const mine = (await api(`/v1/jobs?project=${t.project}`, { token: t.viewer })).json.jobs.map((j: { id: string }) => j.id);
    expect(mine).toContain(jobId);
    const theirs = (await api("/v1/jobs?limit=200", { token: t.outsider })).json.jobs.map((j: { id: string }) => j.id);
    expect(theirs).not.toContain(jobId);
    expect((await api(`/v1/jobs?project=${t.project}`, { token: t.outsider })).json.jobs).toEqual([]);
    const q = (query: string) => api(`/v1/jobs?project=${t.project}&${query}`, { token: t.viewer }).then((r) => r.json.jobs.map((j: { id: string }) => j.id));
    expect(await q("tag=team%3Dml")).toEqual([jobId]);
    expect(await q("tag=team%3Dcv")).toEqual([]);
    expect(await q("name=sweep")).toEqual([jobId]);
    expect(await q(`submitted_by=${t.memberName}`)).toEqual([jobId]);
    expect(await q("submitted_by=admin")).toEqual([]);
    expect((await api("/v1/jobs?tag=nokey", { token: t.viewer })).json.error.field).toBe("tag");
  });

  it("lets a member cancel", async () => {
    const res = await api(`/v1/jobs/${jobId}/cancel`, { method: "POST", token: t.member });
    expect(res.status).toBe(200);
    expect(res.json.status).toBe("canceled");
  });

  it("bounds a job's name and tags", async () => {
    const long = await submit({ name: "x".repeat(201) });
    expect([long.status, long.json.error.field]).toEqual([400, "name"]);
    const many = await submit({ tags: Array.from({ length: 17 }, (_, i) => `k${i}=v`) });
    expect([many.status, many.json.error.field]).toEqual([400, "tags"]);
    const bad = await submit({ tags: ["novalue"] });
    expect([bad.status, bad.json.error.field]).toEqual([400, "tags.0"]);
  });
});

describe("datasets follow the role", () => {
  let t: Team;
  let id: string;
  beforeAll(async () => {
    t = await team();
    id = created(await api("/v1/datasets", { method: "POST", token: t.member, json: { name: "in.bin", size: 4, sha256: sha, project: t.project } }));
  });

  it("answers 404 to a non-member, lets a viewer read and refuses its writes", async () => {
    for (const path of ["", "/download"]) expect((await api(`/v1/datasets/${id}${path}`, { token: t.outsider })).status).toBe(404);
    expect((await api(`/v1/datasets/${id}`, { method: "DELETE", token: t.outsider })).status).toBe(404);
    expect((await api(`/v1/datasets/${id}`, { token: t.viewer })).status).toBe(200);
    expect((await api(`/v1/datasets/${id}`, { method: "DELETE", token: t.viewer })).status).toBe(403);
    expect((await api("/v1/datasets", { method: "POST", token: t.viewer, json: { name: "x", size: 1, project: t.project } })).status).toBe(403);
    expect((await api("/v1/datasets", { method: "POST", token: t.outsider, json: { name: "x", size: 1, project: t.project } })).json.error).toMatchObject({ code: "not_found", field: "project" });
    expect((await api(`/v1/datasets?limit=200`, { token: t.outsider })).json.datasets.map((d: { id: string }) => d.id)).not.toContain(id);
    expect((await api(`/v1/datasets?project=${t.project}`, { token: t.viewer })).json.datasets.map((d: { id: string }) => d.id)).toEqual([id]);
  });

  it("mounts a dataset only into jobs of its own project", async () => {
    const other = await api("/v1/jobs", { method: "POST", token: t.outsider, json: { kind: "python", python: { script: "1" }, project: (await api("/v1/me", { token: t.outsider })).json.projects[0].project, inputs: [{ dataset: id, path: "in.bin" }] } });
    expect(other.status).toBe(400);
    expect(other.json.error.field).toBe("inputs.0.dataset");
    const own = await api("/v1/jobs", { method: "POST", token: t.member, json: { kind: "python", python: { script: "1" }, project: t.project, inputs: [{ dataset: id, path: "in.bin" }] } });
    expect(own.status).toBe(201);
  });

  it("belongs to the project it was uploaded into", async () => {
    expect((await api(`/v1/datasets/${id}`, { token: t.member })).json.project).toBe(t.project);
  });

  it("lets a member delete", async () => {
    expect((await api(`/v1/datasets/${id}`, { method: "DELETE", token: t.member })).status).toBe(204);
  });
});

describe("secrets follow the role", () => {
  it("are listed to every member, written only by owners, and hidden from non-members", async () => {
    const t = await team();
    const path = `/v1/projects/${t.project}/secrets`;
    expect((await api(path, { token: t.outsider })).status).toBe(404);
    expect((await api(`${path}/k`, { method: "PUT", token: t.outsider, json: { value: "v" } })).status).toBe(404);
    expect((await api(`${path}/k`, { method: "PUT", token: t.viewer, json: { value: "v" } })).status).toBe(403);
    const byMember = await api(`${path}/k`, { method: "PUT", token: t.member, json: { value: "v" } });
    expect([byMember.status, byMember.json.error.message]).toEqual([403, expect.stringMatching(/owner role/)]);
    expect((await api(`${path}/k`, { method: "PUT", token: t.owner, json: { value: "v" } })).status).toBe(200);
    expect((await api(path, { token: t.viewer })).json.secrets.map((s: { name: string }) => s.name)).toEqual(["k"]);
    expect((await api(`${path}/k`, { method: "DELETE", token: t.member })).status).toBe(403);
    expect((await api(`${path}/k`, { method: "DELETE", token: t.owner })).status).toBe(204);
  });

  it("refuses at submit a repo job that names another project's credentials (the credential attack)", async () => {
    const victim = await team();
    await api(`/v1/projects/${victim.project}/secrets/deploy-key`, { method: "PUT", token: victim.owner, json: { value: "ghp_victim" } });
    const attacker = await userToken({ project: await newProject(), role: "owner" });
    const job = (project: string) => ({
      kind: "repo",
      project,
      command: ["true"],
      repo: { code_repo_url: "https://attacker.example/x.git", code_commit_id: "main", env_repo_url: "https://attacker.example/e.git", env_commit_id: "main", project: victim.project, code_credentials: "deploy-key" },
    });
    const res = await api("/v1/jobs", { method: "POST", token: attacker.token, json: job(attacker.project) });
    expect(res.status).toBe(403);
    expect(res.json.error.field).toBe("repo.code_credentials");
    // Not even the admin can point one project's jobs at another's credentials.
    expect((await api("/v1/jobs", { method: "POST", json: job(attacker.project) })).json.error.field).toBe("repo.code_credentials");
    // And into the victim's project itself, the attacker is not a member.
    expect((await api("/v1/jobs", { method: "POST", token: attacker.token, json: job(victim.project) })).status).toBe(404);
    const asEnv = await api("/v1/jobs", { method: "POST", token: attacker.token, json: { kind: "python", python: { script: "1" }, project: attacker.project, secrets: { KEY: "deploy-key" } } });
    expect([asEnv.status, asEnv.json.error.field]).toEqual([400, "secrets.KEY"]);
  });
});

describe("tokens", () => {
  it("lists a user's own tokens with their dates, and the admin every one", async () => {
    const a = await userToken();
    const b = await userToken();
    // Its use is recorded after the answer, so it shows once written.
    const own = await pollUntil(
      async () => (await api("/v1/api-tokens", { token: a.token })).json.tokens,
      (tokens) => tokens[0]?.last_used_at !== null,
      { timeoutMs: 5000, intervalMs: 50, what: "last_used_at" },
    );
    expect(own.map((t: { id: string }) => t.id)).toEqual([a.tokenId]);
    expect(own[0]).toMatchObject({ kind: "user", user: a.user, expires_at: null, last_used_at: expect.any(String) });
    expect(JSON.stringify(own)).not.toContain(a.token);
    const all = (await api("/v1/api-tokens")).json.tokens.map((t: { id: string }) => t.id);
    expect(all).toEqual(expect.arrayContaining([a.tokenId, b.tokenId]));
    expect((await api(`/v1/api-tokens/${b.tokenId}`, { method: "DELETE", token: a.token })).status).toBe(404);
  });

  it("stops a revoked token at its next request", async () => {
    const a = await userToken();
    expect((await api("/v1/jobs", { token: a.token })).status).toBe(200);
    expect((await api(`/v1/api-tokens/${a.tokenId}`, { method: "DELETE", token: a.token })).status).toBe(204);
    const after = await api("/v1/jobs", { token: a.token });
    expect([after.status, after.json.error.code]).toEqual([401, "unauthorized"]);
  });

  it("stops an expired token", async () => {
    const a = await userToken({ expires_in_s: 3600 });
    expect((await api("/v1/api-tokens", { token: a.token })).json.tokens[0].expires_at).toMatch(/^\d{4}-/);
    expect((await api("/v1/jobs", { token: a.token })).status).toBe(200);
    // An hour is too long to wait for: the clock is moved instead, by moving the expiry.
    await env.DB.prepare("UPDATE tokens SET expires_at = ?1 WHERE id = ?2").bind(Date.now() - 1, a.tokenId).run();
    expect((await api("/v1/jobs", { token: a.token })).status).toBe(401);
  });

  it("lets a user issue tokens for itself only, and bounds the expiry", async () => {
    const a = await userToken();
    const b = await userToken();
    expect((await api("/v1/api-tokens", { method: "POST", token: a.token, json: { name: "ci" } })).status).toBe(201);
    expect((await api("/v1/api-tokens", { method: "POST", token: a.token, json: { name: "ci", user: b.user } })).json.error.field).toBe("user");
    expect((await api("/v1/api-tokens", { method: "POST", json: { name: "ci" } })).json.error.field).toBe("user");
    expect((await api("/v1/api-tokens", { method: "POST", json: { name: "ci", user: "nobody" } })).status).toBe(404);
    expect((await api("/v1/api-tokens", { method: "POST", json: { name: "ci", user: a.user, expires_in_s: 5 } })).json.error.field).toBe("expires_in_s");
  });

  it("closes a revoked agent token's socket at once, and it cannot dial again", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool, "revoked-agent");
    const { agent } = await FakeAgent.join(token);
    const listed = (await api("/v1/agent-tokens")).json.tokens.find((t: { name: string; pool: string }) => t.pool === pool);
    expect(listed).toMatchObject({ kind: "agent", name: "revoked-agent", pool });
    expect((await api(`/v1/agent-tokens/${listed.id}`, { method: "DELETE" })).status).toBe(204);
    const closed = await pollUntil(async () => agent.closed, (c) => c !== null, { timeoutMs: 5000, intervalMs: 20, what: "the agent's socket closing" });
    expect(closed!.code).toBe(CloseCode.revoked);
    expect(FATAL_CLOSES).toContain(closed!.code);
    await expect(FakeAgent.connect(token)).rejects.toThrow(/answered 401/);
    expect((await api("/v1/agent-tokens")).json.tokens.map((t: { id: string }) => t.id)).not.toContain(listed.id);
  });

  it("lets an expiring token mint only tokens that expire no later", async () => {
    const a = await userToken({ expires_in_s: 3600 });
    const parent = Date.parse((await api("/v1/api-tokens", { token: a.token })).json.tokens[0].expires_at);
    const forever = await api("/v1/api-tokens", { method: "POST", token: a.token, json: { name: "forever" } });
    expect(forever.status).toBe(201);
    expect(Date.parse(forever.json.expires_at)).toBe(parent);
    const longer = await api("/v1/api-tokens", { method: "POST", token: a.token, json: { name: "longer", expires_in_s: 7200 } });
    expect(Date.parse(longer.json.expires_at)).toBe(parent);
  });

  it("keeps agent tokens to the admin", async () => {
    const a = await userToken();
    expect((await api("/v1/agent-tokens", { token: a.token })).status).toBe(403);
    expect((await api("/v1/agent-tokens/tok_x", { method: "DELETE", token: a.token })).status).toBe(403);
    expect((await api("/v1/agent-tokens/tok_x", { method: "DELETE" })).status).toBe(404);
  });
});

describe("workers and pools", () => {
  it("are the grid's, read by every user and changed only by the admin", async () => {
    const a = await userToken({ role: null });
    expect((await api("/v1/workers", { token: a.token })).status).toBe(200);
    expect((await api("/v1/pools", { token: a.token })).status).toBe(200);
    const drain = await api("/v1/workers/w_nope/drain", { method: "POST", token: a.token });
    expect(drain.status).toBe(403);
  });
});

describe("projects and members", () => {
  it("are created by the admin and listed to their members only", async () => {
    const t = await team();
    expect((await api("/v1/projects", { method: "POST", json: { name: t.project } })).status).toBe(409);
    expect((await api("/v1/projects", { method: "POST", token: t.owner, json: { name: "mine" } })).status).toBe(403);
    expect((await api("/v1/projects", { token: t.viewer })).json.projects.map((p: { name: string }) => p.name)).toEqual([t.project]);
    expect((await api(`/v1/projects/${t.project}`, { token: t.outsider })).status).toBe(404);
    const seen = (await api(`/v1/projects/${t.project}`, { token: t.viewer })).json;
    expect(seen).toMatchObject({ name: t.project, role: "viewer", weight: 1, quotas: {}, usage: { running_jobs: 0, queued_jobs: 0, gpus: 0, dataset_bytes: 0 } });
  });

  it("are managed by owners: members and viewers cannot change roles or quotas", async () => {
    const t = await team();
    const extra = await userToken({ role: null });
    const put = (token: string, role: string) => api(`/v1/projects/${t.project}/members/${extra.user}`, { method: "PUT", token, json: { role } });
    expect((await put(t.member, "viewer")).status).toBe(403);
    expect((await put(t.outsider, "viewer")).status).toBe(404);
    expect((await put(t.owner, "admin")).json.error.field).toBe("role");
    const added = await put(t.owner, "viewer");
    expect(added.status).toBe(200);
    expect(added.json.members.find((m: { user: string }) => m.user === extra.user)).toMatchObject({ role: "viewer" });
    expect((await api(`/v1/jobs?project=${t.project}`, { token: extra.token })).status).toBe(200);
    expect((await api(`/v1/projects/${t.project}`, { method: "PATCH", token: t.member, json: { quotas: { max_queued_jobs: 1 } } })).status).toBe(403);
    expect((await api(`/v1/projects/${t.project}`, { method: "PATCH", token: t.owner, json: { weight: 5 } })).json.error.field).toBe("weight");
    const patched = await api(`/v1/projects/${t.project}`, { method: "PATCH", token: t.owner, json: { quotas: { max_queued_jobs: 10 } } });
    expect(patched.json.quotas).toEqual({ max_queued_jobs: 10 });
    // An owner tightens; raising or removing a quota is the admin's.
    expect((await api(`/v1/projects/${t.project}`, { method: "PATCH", token: t.owner, json: { quotas: { max_queued_jobs: 5 } } })).json.quotas).toEqual({ max_queued_jobs: 5 });
    const raise = await api(`/v1/projects/${t.project}`, { method: "PATCH", token: t.owner, json: { quotas: { max_queued_jobs: 50 } } });
    expect([raise.status, raise.json.error.field]).toEqual([403, "quotas.max_queued_jobs"]);
    expect((await api(`/v1/projects/${t.project}`, { method: "PATCH", token: t.owner, json: { quotas: {} } })).status).toBe(403);
    expect((await api(`/v1/projects/${t.project}`, { method: "PATCH", json: { quotas: { max_queued_jobs: 50 }, weight: 2 } })).json).toMatchObject({ quotas: { max_queued_jobs: 50 }, weight: 2 });
    expect((await api(`/v1/projects/${t.project}/members/${extra.user}`, { method: "DELETE", token: t.owner })).status).toBe(204);
    expect((await api(`/v1/jobs?project=${t.project}`, { token: extra.token })).json.jobs).toEqual([]);
  });

  it("reserves the names the audit log uses for others", async () => {
    for (const name of ["admin", "u_x", "tok_x"]) expect((await api("/v1/users", { method: "POST", json: { name } })).json.error.field).toBe("name");
  });

  it("keeps a last owner from stepping down", async () => {
    const project = await newProject();
    const owner = await userToken({ project, role: "owner" });
    const res = await api(`/v1/projects/${project}/members/${owner.user}`, { method: "PUT", token: owner.token, json: { role: "member" } });
    expect([res.status, res.json.error.field]).toEqual([409, "role"]);
  });
});

describe("quotas", () => {
  it("refuses a submit past max_queued_jobs with 429 naming the quota, the usage and the field", async () => {
    const project = await newProject({ quotas: { max_queued_jobs: 2 } });
    const pool = uniquePool();
    for (let i = 0; i < 2; i++) expect((await submit({ project, pool })).status).toBe(201);
    const res = await submit({ project, pool });
    expect(res.status).toBe(429);
    expect(res.json.error).toMatchObject({ code: "too_many_requests", field: "project", quota: "max_queued_jobs", limit: 2, usage: 2 });
    expect((await api(`/v1/projects/${project}`)).json.usage.queued_jobs).toBe(2);
  });

  it("still answers a retried submit with its job when the queue is full", async () => {
    const project = await newProject({ quotas: { max_queued_jobs: 1 } });
    const headers = { "Idempotency-Key": `full-${project}` };
    const first = await submit({ project, pool: uniquePool() }, headers);
    expect(first.status).toBe(201);
    const again = await submit({ project, pool: first.json.pool }, headers);
    expect([again.status, again.json.id]).toEqual([200, first.json.id]);
  });

  it("refuses an upload past max_dataset_bytes with 413", async () => {
    const project = await newProject({ quotas: { max_dataset_bytes: 10 } });
    expect((await api("/v1/datasets", { method: "POST", json: { name: "a", size: 6, project } })).status).toBe(201);
    const res = await api("/v1/datasets", { method: "POST", json: { name: "b", size: 6, project } });
    expect(res.status).toBe(413);
    expect(res.json.error).toMatchObject({ field: "size", quota: "max_dataset_bytes", limit: 10, usage: 6 });
  });

  it("holds jobs past max_running_jobs in queued, saying which quota", async () => {
    const project = await newProject({ quotas: { max_running_jobs: 0 } });
    const job = (await submit({ project, pool: uniquePool() })).json;
    expect(job.pending_reason).toMatch(/quota max_running_jobs: 0 of 0/);
    expect((await api(`/v1/jobs?project=${project}`)).json.jobs[0].pending_reason).toMatch(/max_running_jobs/);
  });
});

describe("audit log", () => {
  it("records who changed members, secrets and jobs, for the admin and the project's owners, never the values", async () => {
    const t = await team();
    await api(`/v1/projects/${t.project}/secrets/api-key`, { method: "PUT", token: t.owner, json: { value: "s3cr3t-value" } });
    const job = (await api("/v1/jobs", { method: "POST", token: t.member, json: { kind: "python", python: { script: "1" }, project: t.project, pool: uniquePool() } })).json;
    await api(`/v1/jobs/${job.id}/cancel`, { method: "POST", token: t.member });
    const page = await api(`/v1/audit?project=${t.project}`, { token: t.owner });
    expect(page.status).toBe(200);
    const actions = page.json.events.map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(["job.cancel", "secret.put", "member.put"]));
    expect(page.json.events.find((e: { action: string }) => e.action === "job.cancel")).toMatchObject({ actor: t.memberName, target: job.id, project: t.project, at: expect.any(String) });
    expect(JSON.stringify(page.json)).not.toContain("s3cr3t-value");
    expect((await api(`/v1/audit?project=${t.project}`, { token: t.member })).status).toBe(403);
    expect((await api(`/v1/audit?project=${t.project}&action=secret.put`)).json.events.map((e: { target: string }) => e.target)).toEqual(["api-key"]);
    const issued = (await api("/v1/audit?action=token.issue&limit=5")).json.events;
    expect(JSON.stringify(issued)).not.toMatch(/gxu_/);
  });
});
