import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { agentToken, api, FakeAgent, newProject, submit, uniquePool, waitForJob } from "./helpers.ts";

const putSecret = async (project: string, name: string, value: string) => {
  const res = await api(`/v1/projects/${project}/secrets/${name}`, { method: "PUT", json: { value } });
  if (res.status !== 200) throw new Error(`secret: ${res.status} ${res.text}`);
};

describe("secrets as environment variables", () => {
  it("hands each job the values of its own project's secrets, in its assignment only", async () => {
    const pool = uniquePool();
    const [a, b] = [await newProject(), await newProject()];
    await putSecret(a, "api", "value-of-a-1234");
    await putSecret(b, "api", "value-of-b-5678");
    const { agent } = await FakeAgent.join(await agentToken(pool));

    const jobA = (await submit({ pool, project: a, secrets: { API_KEY: "api" } })).json;
    expect(JSON.stringify(jobA)).not.toContain("value-of");
    const assignA = await agent.next("assign_job");
    expect(assignA.payload).toMatchObject({ job_id: jobA.id, secret_env: { API_KEY: "value-of-a-1234" } });
    expect(assignA.payload.spec.secrets).toEqual({ API_KEY: "api" });
    agent.send({ type: "job_result", payload: { job_id: jobA.id, attempt: 1, exit_code: 0, failure_reason: null, message: null } });
    await waitForJob(jobA.id, (j) => j.status === "completed");

    const jobB = (await submit({ pool, project: b, secrets: { API_KEY: "api" }, env: { OTHER: "1" } })).json;
    const assignB = await agent.next("assign_job");
    expect(assignB.payload).toMatchObject({ job_id: jobB.id, secret_env: { API_KEY: "value-of-b-5678" } });

    const stored = await env.DB.prepare("SELECT spec FROM jobs WHERE id IN (?, ?)").bind(jobA.id, jobB.id).all<{ spec: string }>();
    expect(stored.results.map((r) => r.spec).join()).not.toContain("value-of");
    expect((await api(`/v1/jobs/${jobA.id}`)).text).not.toContain("value-of");
    agent.close();
  });

  it("gives a job without secrets none", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool));
    await submit({ pool });
    expect((await agent.next("assign_job")).payload.secret_env).toEqual({});
    agent.close();
  });

  it("refuses at submit a secret the job's project lacks, though another project has it", async () => {
    const [a, b] = [await newProject(), await newProject()];
    await putSecret(a, "only-in-a", "value-of-a-1234");
    const res = await submit({ pool: uniquePool(), project: b, secrets: { API_KEY: "only-in-a" } });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: "validation_failed", field: "secrets.API_KEY" });
    expect(res.json.error.message).toContain(`project ${b} has no secret only-in-a`);
  });

  it("refuses a variable that env sets too, and the names gridx sets, naming the field", async () => {
    const p = await newProject();
    await putSecret(p, "api", "value-1234");
    const cases: [Record<string, unknown>, string][] = [
      [{ secrets: { API_KEY: "api" }, env: { API_KEY: "plain" } }, "secrets.API_KEY"],
      [{ secrets: { GRIDX_JOB_ID: "api" } }, "secrets.GRIDX_JOB_ID"],
      [{ secrets: { "1BAD": "api" } }, "secrets.1BAD"],
      [{ secrets: { API_KEY: "-bad" } }, "secrets.API_KEY"],
    ];
    const answers = [];
    for (const [over] of cases) {
      const res = await submit({ pool: uniquePool(), project: p, ...over });
      answers.push([res.status, res.json.error?.field]);
    }
    expect(answers).toEqual(cases.map(([, field]) => [400, field]));
  });

  it("leaves out of the assignment a secret deleted since submit (the agent then fails the job, naming it)", async () => {
    const pool = uniquePool();
    const p = await newProject();
    await putSecret(p, "kept", "kept-value-1234");
    await putSecret(p, "gone", "gone-value-5678");
    const job = (await submit({ pool, project: p, secrets: { KEPT: "kept", GONE: "gone" } })).json;
    expect((await api(`/v1/projects/${p}/secrets/gone`, { method: "DELETE" })).status).toBe(204);
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const assign = await agent.next("assign_job");
    expect(assign.payload).toMatchObject({ job_id: job.id, spec: { secrets: { KEPT: "kept", GONE: "gone" } } });
    expect(assign.payload.secret_env).toEqual({ KEPT: "kept-value-1234" });
    agent.close();
  });
});
