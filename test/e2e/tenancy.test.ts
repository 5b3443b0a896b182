import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { readResponse } from "../helpers/http.ts";
import { api, cp, isDone, launchOnlineAgent, newProject, uniqueName, waitForJob } from "./helpers.ts";

/** The API as one user: the same requests a client of that user's token makes. */
async function as(token: string, path: string, init: RequestInit & { json?: unknown } = {}) {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  if (init.json !== undefined) headers.set("content-type", "application/json");
  return readResponse(await fetch(cp().url + path, { redirect: "manual", ...init, headers, body: init.json !== undefined ? JSON.stringify(init.json) : init.body }));
}

/** Setup that must work: a failure stops the suite with the answer. */
async function must(status: number, res: Promise<Awaited<ReturnType<typeof api>>>) {
  const answer = await res;
  if (answer.status !== status) throw new Error(`setup: ${answer.status} ${answer.text}`);
  return answer;
}

/** A user with an API token, a member of `project` with `role`. */
async function user(project: string, role: string) {
  const name = uniqueName("user");
  await must(201, api("/v1/users", { method: "POST", json: { name } }));
  await must(200, api(`/v1/projects/${project}/members/${name}`, { method: "PUT", json: { role } }));
  const issued = await must(201, api("/v1/api-tokens", { method: "POST", json: { name: `${name}-cli`, user: name } }));
  return { name, token: issued.json.token as string, id: issued.json.id as string };
}

/*
 * Two teams on one real grid (wrangler dev, a real agent, Docker, R2 through presigned URLs):
 * what one team's job, logs, artifacts and datasets are to the other.
 */
describe("projects on a real grid", () => {
  const pool = uniqueName("tenancy");
  const project = uniqueName("team");
  const other = uniqueName("other");
  let agent: AgentProcess;
  let member: Awaited<ReturnType<typeof user>>;
  let viewer: Awaited<ReturnType<typeof user>>;
  let outsider: Awaited<ReturnType<typeof user>>;
  let jobId: string;

  beforeAll(async () => {
    for (const name of [project, other]) await newProject(name);
    [member, viewer, outsider] = await Promise.all([user(project, "member"), user(project, "viewer"), user(other, "owner")]);
    agent = await launchOnlineAgent({ pool, name: uniqueName("node") });
    const script = "import os\nprint('secret work')\nopen('/work/output/result.txt', 'w').write('42')";
    const res = await as(member.token, "/v1/jobs", { method: "POST", json: { kind: "python", python: { script }, pool, project, name: "e2e run", tags: ["suite=tenancy"] } });
    if (res.status !== 201) throw new Error(`submit: ${res.status} ${res.text}`);
    jobId = res.json.id;
    await waitForJob(jobId, isDone);
  });

  afterAll(async () => {
    await agent?.stop("SIGTERM");
  });

  it("runs the member's job in its project, under its name", async () => {
    expect(await waitForJob(jobId, isDone)).toMatchObject({ status: "completed", project, name: "e2e run", submitted_by: member.name });
  });

  it("shows the job, its logs and its artifact to members and viewers, and to no one else", async () => {
    for (const token of [member.token, viewer.token]) {
      expect((await as(token, `/v1/jobs/${jobId}`)).json.stdout).toBe("secret work\n");
      expect((await as(token, `/v1/jobs/${jobId}/logs`)).json.lines.map((l: { text: string }) => l.text)).toContain("secret work");
      const download = await as(token, `/v1/jobs/${jobId}/artifacts/result.txt`);
      expect(download.status).toBe(302);
      expect(await (await fetch(download.headers.get("location")!)).text()).toBe("42");
    }
    for (const path of ["", "/logs", "/artifacts", "/artifacts/result.txt", "/attempts"]) {
      expect([path, (await as(outsider.token, `/v1/jobs/${jobId}${path}`)).status]).toEqual([path, 404]);
    }
    const list = await as(outsider.token, `/v1/jobs?tag=suite%3Dtenancy`);
    expect(list.json.jobs).toEqual([]);
    expect((await as(viewer.token, `/v1/jobs?tag=suite%3Dtenancy`)).json.jobs.map((j: { id: string }) => j.id)).toEqual([jobId]);
  });

  it("keeps a viewer to reading: no submit, no cancel, no upload", async () => {
    const sub = await as(viewer.token, "/v1/jobs", { method: "POST", json: { kind: "python", python: { script: "1" }, pool, project } });
    expect([sub.status, sub.json.error.message]).toEqual([403, expect.stringMatching(/member role/)]);
    expect((await as(viewer.token, `/v1/jobs/${jobId}/cancel`, { method: "POST" })).status).toBe(403);
    expect((await as(viewer.token, "/v1/datasets", { method: "POST", json: { name: "x", size: 1, project } })).status).toBe(403);
  });

  it("uploads a dataset through R2 for the project only, and mounts it into the project's jobs only", async () => {
    const bytes = Buffer.from("tenant data\n");
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const created = await as(member.token, "/v1/datasets", { method: "POST", json: { name: "data.txt", size: bytes.length, sha256, project } });
    expect(created.status).toBe(201);
    expect((await fetch(created.json.upload.url, { method: "PUT", body: bytes })).ok).toBe(true);
    expect((await as(member.token, `/v1/datasets/${created.json.id}/complete`, { method: "POST", json: {} })).json.status).toBe("ready");
    expect((await as(outsider.token, `/v1/datasets/${created.json.id}`)).status).toBe(404);
    expect((await as(outsider.token, `/v1/datasets/${created.json.id}/download`)).status).toBe(404);
    const theirs = await as(outsider.token, "/v1/jobs", { method: "POST", json: { kind: "python", python: { script: "1" }, pool, project: other, inputs: [{ dataset: created.json.id, path: "data.txt" }] } });
    expect([theirs.status, theirs.json.error.field]).toEqual([400, "inputs.0.dataset"]);
    const ours = await as(member.token, "/v1/jobs", { method: "POST", json: { kind: "python", python: { script: "print(open('/work/input/data.txt').read().strip())" }, pool, project, inputs: [{ dataset: created.json.id, path: "data.txt" }] } });
    expect(await waitForJob(ours.json.id, isDone)).toMatchObject({ status: "completed", stdout: "tenant data\n" });
  });

  it("ends a revoked token's access at its next request", async () => {
    const spare = await user(project, "member");
    expect((await as(spare.token, `/v1/jobs/${jobId}`)).status).toBe(200);
    expect((await as(spare.token, `/v1/api-tokens/${spare.id}`, { method: "DELETE" })).status).toBe(204);
    expect((await as(spare.token, `/v1/jobs/${jobId}`)).status).toBe(401);
  });
});
