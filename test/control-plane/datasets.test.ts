import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../control-plane/src/index.ts";
import { agentToken, api, FakeAgent, submit, uniquePool, waitForJob } from "./helpers.ts";

const MIB = 1024 * 1024;
const sha = "a".repeat(64);

describe("datasets", () => {
  it("plans a single presigned PUT for a small file, scoped to one object and method", async () => {
    const res = await api("/v1/datasets", { method: "POST", json: { name: "small.csv", size: 1000, sha256: sha } });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ name: "small.csv", size: 1000, sha256: sha, status: "uploading", multipart: false });
    const url = new URL(res.json.upload.url);
    expect(res.json.upload.method).toBe("PUT");
    expect(url.pathname).toBe(`/cdn-cgi/local/r2/s3/gridx/datasets/${res.json.id}`);
    expect(url.searchParams.get("X-Amz-Expires")).toBe("900");
    expect(url.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    expect(url.searchParams.get("X-Amz-Credential")).toMatch(/^test-key\//);
    expect(res.text).not.toContain("test-secret");
  });

  it("plans a multipart upload for a big file, hands out more part URLs, and completes with the parts", async () => {
    const size = 12 * MIB + 7;
    const res = await api("/v1/datasets", { method: "POST", json: { name: "big.bin", size } });
    expect(res.json.upload.multipart).toMatchObject({ part_size: 5 * MIB, part_count: 3 });
    expect(res.json.upload.multipart.parts.map((p: any) => p.part_number)).toEqual([1, 2, 3]);
    const id = res.json.id;
    const more = await api(`/v1/datasets/${id}/upload-urls`, { method: "POST", json: { part_numbers: [2] } });
    expect(more.json.parts).toHaveLength(1);
    expect(new URL(more.json.parts[0].url).searchParams.get("partNumber")).toBe("2");
    expect((await api(`/v1/datasets/${id}/upload-urls`, { method: "POST", json: { part_numbers: [4] } })).json.error.field).toBe("part_numbers");

    // Upload the parts the way a client would (here through the binding), then complete.
    const row = await env.DB.prepare("SELECT key, upload_id FROM datasets WHERE id = ?").bind(id).first<{ key: string; upload_id: string }>();
    const upload = env.BUCKET.resumeMultipartUpload(row!.key, row!.upload_id);
    const parts = [];
    for (const [n, bytes] of [[1, 5 * MIB], [2, 5 * MIB], [3, 2 * MIB + 7]] as const) parts.push(await upload.uploadPart(n, new Uint8Array(bytes)));
    const notYet = await api(`/v1/datasets/${id}/complete`, { method: "POST", json: {} });
    expect(notYet.json.error.field).toBe("parts");
    const done = await api(`/v1/datasets/${id}/complete`, { method: "POST", json: { parts: parts.map((p) => ({ part_number: p.partNumber, etag: p.etag })) } });
    expect(done.status).toBe(200);
    expect(done.json).toMatchObject({ status: "ready", size });
    const download = await api(`/v1/datasets/${id}/download?ttl_s=60`, { redirect: "manual" });
    expect(download.status).toBe(302);
    const location = new URL(download.headers.get("location")!);
    expect(location.searchParams.get("X-Amz-Expires")).toBe("60");
    expect(location.pathname).toBe(`/cdn-cgi/local/r2/s3/gridx/datasets/${id}`);
  });

  it("refuses to complete until the declared bytes are there", async () => {
    const res = await api("/v1/datasets", { method: "POST", json: { name: "x", size: 10 } });
    const early = await api(`/v1/datasets/${res.json.id}/complete`, { method: "POST", json: {} });
    expect(early.status).toBe(409);
    await env.BUCKET.put(`datasets/${res.json.id}`, "12345");
    const short = await api(`/v1/datasets/${res.json.id}/complete`, { method: "POST", json: {} });
    expect(short.status).toBe(409);
    expect(short.json.error.message).toMatch(/5 bytes arrived, 10 were declared/);
    expect((await api(`/v1/datasets/${res.json.id}/download`, { redirect: "manual" })).status).toBe(409);
    await env.BUCKET.put(`datasets/${res.json.id}`, "1234567890");
    expect((await api(`/v1/datasets/${res.json.id}/complete`, { method: "POST", json: {} })).json.status).toBe("ready");
  });

  it.each([
    [{ name: "", size: 1 }, "name"],
    [{ name: "../etc/passwd", size: 1 }, "name"],
    [{ name: "ok", size: -1 }, "size"],
    [{ name: "ok", size: 1, sha256: "XYZ" }, "sha256"],
  ])("rejects %j naming %s", async (body, field) => {
    const res = await api("/v1/datasets", { method: "POST", json: body });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe(field);
  });

  it("refuses a dataset over the size limit with 413", async () => {
    const res = await api("/v1/datasets", { method: "POST", json: { name: "huge", size: 60 * 1024 * MIB } });
    expect(res.status).toBe(413);
    expect(res.json.error.field).toBe("size");
  });

  it("lists, shows and deletes datasets; 404 for unknown ones", async () => {
    const created = (await api("/v1/datasets", { method: "POST", json: { name: "to-delete", size: 3 } })).json;
    expect((await api(`/v1/datasets/${created.id}`)).json.name).toBe("to-delete");
    expect((await api("/v1/datasets?limit=200")).json.datasets.some((d: any) => d.id === created.id)).toBe(true);
    expect((await api(`/v1/datasets/${created.id}`, { method: "DELETE" })).status).toBe(204);
    expect((await api(`/v1/datasets/${created.id}`)).status).toBe(404);
    expect((await api("/v1/datasets/ds_nope/download")).status).toBe(404);
  });

  it("aborts abandoned uploads on the scheduled sweep", async () => {
    const created = (await api("/v1/datasets", { method: "POST", json: { name: "abandoned", size: 20 * MIB } })).json;
    await env.DB.prepare("UPDATE datasets SET created_at = ? WHERE id = ?").bind(Date.now() - 25 * 3600 * 1000, created.id).run();
    const ctx = createExecutionContext();
    await worker.scheduled({ scheduledTime: Date.now(), cron: "*/30 * * * *", noRetry() {} } as ScheduledController, env as never, ctx);
    await waitOnExecutionContext(ctx);
    expect((await api(`/v1/datasets/${created.id}`)).status).toBe(404);
  });
});

describe("job inputs", () => {
  it("refuses at submit a dataset the job's project does not have", async () => {
    const res = await submit({ pool: uniquePool(), inputs: [{ dataset: "ds_missing", path: "data.bin" }] });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ field: "inputs.0.dataset", message: "inputs.0.dataset: project default has no dataset ds_missing" });
  });

  it("fails a job whose dataset is deleted before it is scheduled failed/input_error, naming it", async () => {
    const pool = uniquePool();
    const ds = (await api("/v1/datasets", { method: "POST", json: { name: "gone", size: 4, sha256: sha } })).json;
    const job = (await submit({ pool, inputs: [{ dataset: ds.id, path: "data.bin" }] })).json;
    expect((await api(`/v1/datasets/${ds.id}`, { method: "DELETE" })).status).toBe(204);
    await FakeAgent.join(await agentToken(pool));
    const done = await waitForJob(job.id, (j) => j.status === "failed");
    expect(done).toMatchObject({ failure_reason: "input_error", failure_message: `input dataset ${ds.id} does not exist` });
  });

  it("sends a ready dataset's presigned GET with the assignment", async () => {
    const ds = (await api("/v1/datasets", { method: "POST", json: { name: "in", size: 4, sha256: sha } })).json;
    await env.BUCKET.put(`datasets/${ds.id}`, "abcd");
    await api(`/v1/datasets/${ds.id}/complete`, { method: "POST", json: {} });
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    await submit({ pool, inputs: [{ dataset: ds.id, path: "data/in.txt" }] });
    const assign = await agent.next("assign_job");
    expect(assign.payload.inputs).toEqual([{ dataset: ds.id, path: "data/in.txt", size: 4, sha256: sha, url: expect.stringContaining(`/gridx/datasets/${ds.id}?`) }]);
  });

  it.each([["../x"], ["/abs"], ["a//b"], ["task.json"]])("rejects input path %s", async (path) => {
    const res = await submit({ pool: uniquePool(), inputs: [{ dataset: "ds_x", path }] });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe("inputs.0.path");
  });
});

describe("artifacts", () => {
  it("lets only the attempt's own agent record artifacts, and serves them by redirect", async () => {
    const pool = uniquePool();
    const token = await agentToken(pool);
    const { agent } = await FakeAgent.join(token);
    const job = (await submit({ pool })).json;
    await agent.next("assign_job");
    const prepare = { job_id: job.id, attempt: 1, files: [{ name: "out/result.txt", size: 5 }] };
    const otherToken = await agentToken(pool, "other");
    expect((await api("/v1/agent/artifacts/prepare", { method: "POST", json: prepare, token: otherToken })).status).toBe(403);
    expect((await api("/v1/agent/artifacts/prepare", { method: "POST", json: prepare })).status).toBe(403);
    const prepared = await api("/v1/agent/artifacts/prepare", { method: "POST", json: prepare, token });
    expect(prepared.status).toBe(200);
    const put = new URL(prepared.json.uploads[0].upload.url);
    expect(put.pathname).toMatch(new RegExp(`/gridx/artifacts/${job.id}/1/[0-9a-f]{64}$`));
    const key = put.pathname.replace("/cdn-cgi/local/r2/s3/gridx/", "");
    await env.BUCKET.put(key, "hello");
    const complete = { job_id: job.id, attempt: 1, artifacts: [{ name: "out/result.txt", size: 5, sha256: sha }] };
    expect((await api("/v1/agent/artifacts/complete", { method: "POST", json: complete, token })).json).toEqual({ recorded: 1 });
    agent.send({ type: "job_result", payload: { job_id: job.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    const done = await waitForJob(job.id, (j) => j.status === "completed");
    expect(done.artifacts).toEqual([{ name: "out/result.txt", size: 5, sha256: sha, attempt: 1, created_at: expect.any(String) }]);
    expect((await api(`/v1/jobs/${job.id}/artifacts`)).json.artifacts).toHaveLength(1);
    const dl = await api(`/v1/jobs/${job.id}/artifacts/out/result.txt`, { redirect: "manual" });
    expect(dl.status).toBe(302);
    expect(dl.headers.get("location")).toContain(key);
    expect((await api(`/v1/jobs/${job.id}/artifacts/nope.txt`)).status).toBe(404);
    // The attempt is over: no more artifacts for it.
    expect((await api("/v1/agent/artifacts/prepare", { method: "POST", json: prepare, token })).status).toBe(409);
  });
});
