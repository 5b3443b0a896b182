import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { pollUntil } from "../helpers/poll.ts";
import { api, cp, isDone, launchOnlineAgent, submit, uniqueName, waitForJob } from "./helpers.ts";

/** The presigned GET an artifact's download redirects to: R2's S3 endpoint itself, not the API. */
async function presignedUrl(jobId: string, name: string): Promise<string> {
  const res = await fetch(`${cp().url}/v1/jobs/${jobId}/artifacts/${name}`, { headers: { authorization: `Bearer ${cp().adminToken}` }, redirect: "manual" });
  expect(res.status).toBe(302);
  return res.headers.get("location")!;
}

describe("DELETE /v1/jobs/:id on a job a real agent ran", () => {
  const pool = uniqueName("retention");
  let agent: AgentProcess;

  beforeAll(async () => {
    agent = await launchOnlineAgent({ pool, name: uniqueName("retention-node") });
  });

  afterAll(async () => {
    await agent?.stop("SIGTERM");
  });

  it("removes the job, its log and its artifacts, in the API and in R2", async () => {
    const script = "open('/work/output/result.txt', 'w').write('kept until deleted')\nprint('a line of log')";
    const done = await waitForJob((await submit({ kind: "python", pool, python: { script } })).id, isDone, 120_000);
    expect(done.status).toBe("completed");
    expect(done.artifacts.map((a: any) => a.name)).toEqual([".gridx/job.log", "result.txt"]);
    expect((await api(`/v1/jobs/${done.id}/logs`)).json.lines.map((l: any) => l.text)).toContain("a line of log");
    const objects = [await presignedUrl(done.id, "result.txt"), await presignedUrl(done.id, ".gridx/job.log")];
    expect(await Promise.all(objects.map(async (url) => (await fetch(url)).status))).toEqual([200, 200]);

    const deleted = await api(`/v1/jobs/${done.id}`, { method: "DELETE" });
    expect(deleted.status).toBe(204);

    for (const path of ["", "/logs", "/artifacts", "/artifacts/result.txt", "/attempts"]) expect((await api(`/v1/jobs/${done.id}${path}`)).status).toBe(404);
    expect((await api(`/v1/jobs?pool=${pool}`)).json.jobs).toEqual([]);
    // The objects themselves, through the S3 endpoint with URLs signed before the deletion.
    expect(await Promise.all(objects.map(async (url) => (await fetch(url)).status))).toEqual([404, 404]);
    const audit = (await api(`/v1/audit?project=default`)).json.events.find((e: any) => e.action === "job.delete" && e.target === done.id);
    expect(audit).toMatchObject({ actor: "admin", detail: { status: "completed", objects: 2 } });
  });

  it("refuses a job that has not finished, naming its status", async () => {
    const job = await submit({ kind: "python", pool, python: { script: "import time; time.sleep(60)" } });
    await waitForJob(job.id, (j) => j.status === "running");
    const refused = await api(`/v1/jobs/${job.id}`, { method: "DELETE" });
    expect(refused.status).toBe(409);
    expect(refused.json.error.message).toBe(`job ${job.id} is running: only a finished job can be deleted (cancel it first)`);
    expect((await api(`/v1/jobs/${job.id}/cancel`, { method: "POST" })).status).toBe(200);
    await waitForJob(job.id, isDone);
    // Until its agent confirms the container gone, the job is still needed (409); then it goes.
    const deleted = await pollUntil(async () => (await api(`/v1/jobs/${job.id}`, { method: "DELETE" })).status, (s) => s !== 409, { timeoutMs: 30_000, intervalMs: 200, what: `deleting ${job.id}` });
    expect(deleted).toBe(204);
  });
});
