import { describe, expect, it } from "vitest";
import { api, submit, uniquePool } from "./helpers.ts";
import { JobDetail, JobPage, LogPage, WorkerList } from "../../control-plane/src/schemas.ts";

/** Every public route, as the document writes it. */
const ROUTES = [
  ["get", "/health"],
  ["get", "/metrics"],
  ["post", "/v1/jobs"],
  ["get", "/v1/jobs"],
  ["get", "/v1/jobs/{id}"],
  ["post", "/v1/jobs/{id}/cancel"],
  ["delete", "/v1/jobs/{id}"],
  ["get", "/v1/jobs/{id}/logs"],
  ["get", "/v1/jobs/{id}/artifacts"],
  ["get", "/v1/jobs/{id}/artifacts/{name}"],
  ["get", "/v1/jobs/{id}/attempts"],
  ["post", "/v1/jobs/batch"],
  ["post", "/v1/jobs/{id}/rerun"],
  ["post", "/v1/jobs/{id}/ports/{port}/links"],
  ["get", "/v1/jobs/{id}/ports/{port}/{path}"],
  ["get", "/v1/jobs/{id}/exec"],
  ["get", "/v1/arrays/{id}"],
  ["post", "/v1/arrays/{id}/cancel"],
  ["get", "/v1/pools"],
  ["get", "/v1/pools/{pool}/stats"],
  ["get", "/v1/pools/{pool}/sandbox"],
  ["put", "/v1/pools/{pool}/sandbox"],
  ["post", "/v1/pools/{pool}/broadcast"],
  ["get", "/v1/broadcasts/{id}"],
  ["put", "/v1/pools/{pool}/autoscale"],
  ["get", "/v1/pools/{pool}/autoscale"],
  ["delete", "/v1/pools/{pool}/autoscale"],
  ["post", "/v1/pools/{pool}/upgrade"],
  ["get", "/v1/pools/{pool}/upgrade"],
  ["post", "/v1/agent-bundles"],
  ["post", "/v1/agent-bundles/{version}/complete"],
  ["get", "/v1/agent-bundles"],
  ["get", "/v1/projects/{project}/secrets"],
  ["put", "/v1/projects/{project}/secrets/{name}"],
  ["delete", "/v1/projects/{project}/secrets/{name}"],
  ["get", "/v1/workers"],
  ["get", "/v1/workers/{id}"],
  ["delete", "/v1/workers/{id}"],
  ["post", "/v1/workers/{id}/drain"],
  ["post", "/v1/workers/{id}/undrain"],
  ["post", "/v1/workers/{id}/probes"],
  ["get", "/v1/workers/{id}/probes"],
  ["post", "/v1/datasets"],
  ["get", "/v1/datasets"],
  ["get", "/v1/datasets/{id}"],
  ["delete", "/v1/datasets/{id}"],
  ["post", "/v1/datasets/{id}/upload-urls"],
  ["post", "/v1/datasets/{id}/complete"],
  ["get", "/v1/datasets/{id}/download"],
  ["post", "/v1/agent-tokens"],
  ["post", "/v1/api-tokens"],
  ["get", "/v1/agent-tokens"],
  ["delete", "/v1/agent-tokens/{id}"],
  ["get", "/v1/api-tokens"],
  ["delete", "/v1/api-tokens/{id}"],
  ["post", "/v1/users"],
  ["get", "/v1/users"],
  ["get", "/v1/me"],
  ["post", "/v1/projects"],
  ["get", "/v1/projects"],
  ["get", "/v1/projects/{project}"],
  ["patch", "/v1/projects/{project}"],
  ["get", "/v1/projects/{project}/members"],
  ["put", "/v1/projects/{project}/members/{user}"],
  ["delete", "/v1/projects/{project}/members/{user}"],
  ["get", "/v1/audit"],
  ["post", "/v1/backups"],
  ["get", "/v1/backups"],
  ["get", "/v1/backups/{name}"],
  ["get", "/v1/events"],
  ["get", "/v1/sessions"],
  ["delete", "/v1/sessions/{id}"],
  ["post", "/v1/webhooks"],
  ["get", "/v1/webhooks"],
  ["get", "/v1/webhooks/{id}"],
  ["delete", "/v1/webhooks/{id}"],
  ["get", "/v1/webhooks/{id}/deliveries"],
  ["post", "/v1/schedules"],
  ["get", "/v1/schedules"],
  ["get", "/v1/schedules/{id}"],
  ["patch", "/v1/schedules/{id}"],
  ["delete", "/v1/schedules/{id}"],
  ["post", "/v1/schedules/{id}/pause"],
  ["post", "/v1/schedules/{id}/resume"],
  ["get", "/v1/schedules/{id}/runs"],
  ["post", "/v1/agent/artifacts/prepare"],
  ["post", "/v1/agent/artifacts/complete"],
  ["get", "/v1/agent/connect"],
] as const;

async function document() {
  const res = await api("/openapi.json", { token: null });
  expect(res.status).toBe(200);
  return res.json;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

describe("GET /openapi.json", () => {
  it("is an OpenAPI 3.1 document with this server, the bearer scheme and tags, served without a token", async () => {
    const doc = await document();
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info).toMatchObject({ title: "gridx" });
    expect(doc.servers).toEqual([{ url: "http://gridx.test", description: "this control plane" }]);
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.tags.map((t: { name: string }) => t.name)).toEqual(["jobs", "workers", "datasets", "projects", "tokens", "secrets", "pools", "webhooks", "schedules", "agent", "ops"]);
  });

  it("lists every public route, and nothing else", async () => {
    const doc = await document();
    const listed = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) => Object.keys(item).map((method) => `${method} ${path}`));
    expect(listed.sort()).toEqual(ROUTES.map(([m, p]) => `${m} ${p}`).sort());
  });

  it.each(ROUTES)("describes %s %s with a summary and a tag", async (method, path) => {
    const op = (await document()).paths[path][method];
    expect(op.summary).toBeTruthy();
    expect(op.tags).toHaveLength(1);
  });

  it.each(ROUTES.filter(([, path]) => path !== "/health"))("describes %s %s as needing a bearer token, answering 401 with the error shape", async (method, path) => {
    const op = (await document()).paths[path][method];
    expect(op.security).toEqual([{ bearer: [] }]);
    expect(op.responses["401"].content["application/json"].schema).toEqual(ref("Error"));
  });

  it("lists 400 on every route with path parameters, which are validated like any input", async () => {
    const doc = await document();
    const missing = Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, unknown> }>>)
      .filter(([path]) => path.includes("{"))
      .flatMap(([path, ops]) => Object.entries(ops).filter(([, op]) => !("400" in op.responses)).map(([method]) => `${method} ${path}`));
    expect(missing).toEqual([]);
  });

  it("describes /health as open", async () => {
    expect((await document()).paths["/health"].get.security).toBeUndefined();
  });

  it("describes bodies, parameters and responses with the schemas that validate them", async () => {
    const doc = await document();
    const submitJob = doc.paths["/v1/jobs"].post;
    expect(submitJob.requestBody).toEqual({ required: true, content: { "application/json": { schema: ref("JobRequest") } } });
    expect(submitJob.responses["201"].content["application/json"].schema).toEqual(ref("JobDetail"));
    expect(submitJob.responses["400"].content["application/json"].schema).toEqual(ref("Error"));
    expect(submitJob.parameters).toContainEqual(expect.objectContaining({ name: "Idempotency-Key", in: "header", required: false }));

    // The request schema is the input side: defaults make fields optional, unknown fields are refused.
    const python = doc.components.schemas.JobRequest.oneOf.find((s: any) => s.properties.kind.enum?.[0] === "python");
    expect(python.required).toEqual(["kind", "python"]);
    expect(python.additionalProperties).toBe(false);
    expect(python.properties.limits.properties.timeout_s).toMatchObject({ type: "integer", minimum: 1, maximum: 604800, default: 3600 });
    expect(python.properties.pool.pattern).toBeTruthy();

    const list = doc.paths["/v1/jobs"].get;
    const status = list.parameters.find((p: any) => p.name === "status");
    expect(status).toMatchObject({ in: "query", required: false });
    expect(status.schema.enum).toEqual(["queued", "assigned", "running", "completed", "failed", "canceled"]);
    expect(list.responses["200"].content["application/json"].schema).toEqual(ref("JobPage"));

    const logs = doc.paths["/v1/jobs/{id}/logs"].get;
    expect(Object.keys(logs.responses["200"].content).sort()).toEqual(["application/json", "text/event-stream"]);
    expect(logs.parameters).toContainEqual(expect.objectContaining({ name: "id", in: "path", required: true }));

    expect(doc.paths["/v1/jobs/{id}/artifacts/{name}"].get.responses["302"].headers.location).toBeTruthy();
    expect(doc.paths["/v1/api-tokens"].post.requestBody.content["application/json"].schema).toEqual(ref("ApiTokenRequest"));
    expect(doc.components.schemas.Error.properties.error.properties.field.type).toBe("string");
    expect(doc.components.schemas.Worker.properties.status.enum).toEqual(["online", "offline", "draining"]);
  });

  it("matches what the routes answer: real responses parse with the response schemas", async () => {
    const pool = uniquePool();
    const created = await submit({ pool });
    expect(JobDetail.safeParse(created.json).success).toBe(true);
    expect(JobDetail.safeParse((await api(`/v1/jobs/${created.json.id}`)).json).success).toBe(true);
    expect(JobPage.safeParse((await api(`/v1/jobs?pool=${pool}`)).json).success).toBe(true);
    expect(LogPage.safeParse((await api(`/v1/jobs/${created.json.id}/logs`)).json).success).toBe(true);
    expect(WorkerList.safeParse((await api("/v1/workers")).json).success).toBe(true);
  });
});

describe("validation through the OpenAPI routes", () => {
  it("still answers a bad body with the JSON error naming the field", async () => {
    const res = await api("/v1/jobs", { method: "POST", json: { kind: "python", python: { script: "x" }, limits: { memory_mb: 1 } } });
    expect(res.status).toBe(400);
    expect(res.json).toEqual({ error: { code: "validation_failed", message: expect.stringMatching(/^limits\.memory_mb: /), field: "limits.memory_mb" } });
  });

  it("names a bad query parameter and a bad header", async () => {
    const query = await api("/v1/jobs?limit=abc");
    expect(query.status).toBe(400);
    expect(query.json.error).toMatchObject({ code: "validation_failed", field: "limit" });
    const header = await submit({ pool: uniquePool() }, { "idempotency-key": "has space" });
    expect(header.status).toBe(400);
    expect(header.json.error).toMatchObject({ code: "validation_failed", field: "Idempotency-Key" });
  });

  it("asks for JSON when the body is sent as something else, and takes an empty JSON body as {}", async () => {
    const form = await api("/v1/api-tokens", { method: "POST", body: "name=x", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(form.status).toBe(400);
    expect(form.json.error).toMatchObject({ code: "validation_failed", field: "Content-Type" });
    // JSON with a parameter the router cannot read: the same 400, never a 415 of another shape.
    const odd = await api("/v1/api-tokens", { method: "POST", body: '{"name":"x"}', headers: { "content-type": "application/json; nonsense" } });
    expect(odd.status).toBe(400);
    expect(odd.json.error).toMatchObject({ code: "validation_failed", field: "Content-Type" });
    const empty = await api("/v1/api-tokens", { method: "POST", body: "", headers: { "content-type": "application/json" } });
    expect(empty.status).toBe(400);
    expect(empty.json.error).toMatchObject({ code: "validation_failed", field: "name" });
  });

  it("checks the token before the body", async () => {
    const res = await api("/v1/jobs", { method: "POST", json: { kind: "ruby" }, token: null });
    expect(res.status).toBe(401);
  });
});
