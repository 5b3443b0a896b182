import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { buildCatImage, removeImages, startRegistry, type LocalRegistry } from "../support/registry.ts";
import { api, isDone, launchOnlineAgent, newProject, submit, uniqueName, waitForJob } from "./helpers.ts";

/** Setup that must succeed before the tests mean anything. */
async function ok(request: Promise<{ status: number; text: string }>) {
  const res = await request;
  if (res.status !== 200) throw new Error(`setup: ${res.status} ${res.text}`);
}

describe("command jobs pull images from a private registry the pool allows, with a login from a project secret", () => {
  const pool = uniqueName("pull");
  const login = { username: "acme", password: `pw-${randomBytes(8).toString("hex")}` };
  const built = `gridx-test/e2e-pull-source:${randomBytes(4).toString("hex")}`;
  let registry: LocalRegistry;
  let image: string;
  let digest: string;
  let agent: AgentProcess;
  let project: string;
  const secret = uniqueName("registry");

  beforeAll(async () => {
    registry = await startRegistry(login);
    image = `${registry.host}/acme/tool:1`;
    await buildCatImage(built, { marker: "tool v1\n" });
    digest = await registry.push(built, image, login);
    await removeImages(image, built);
    agent = await launchOnlineAgent({ pool, name: uniqueName("pull-node") });
    await ok(api(`/v1/pools/${pool}/sandbox`, { method: "PUT", json: { images: [`${registry.host}/acme/*`] } }));
    project = await newProject();
    await ok(api(`/v1/projects/${project}/secrets/${secret}`, { method: "PUT", json: { value: `${login.username}:${login.password}` } }));
  });

  afterAll(async () => {
    await agent?.stop("SIGTERM");
    await removeImages(built);
    if (!registry) return;
    await removeImages(`${registry.host}/acme/tool@${digest}`, image);
    await registry.close();
  });

  it("runs a job whose image matches the pool's pattern, pulled with the secret's login, and reports the image pinned by digest", async () => {
    const job = await submit({ kind: "command", pool, project, command: { image, argv: ["/bin/cat", "/marker"], registry_credentials: secret } });
    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "completed", exit_code: 0, stdout: "tool v1\n", resolved: { image: `${registry.host}/acme/tool@${digest}` } });
    const logs = await api(`/v1/jobs/${job.id}/logs`);
    const lines = logs.json.lines as { stream: string; text: string }[];
    const text = (stream: string) => lines.filter((l) => l.stream === stream).map((l) => l.text);
    expect(text("system")).toContain(`[gridx: pulling image ${image} with the registry login in secret ${secret}]`);
    expect(text("build")).toContainEqual(expect.stringMatching(/: layer [0-9a-f]{12}: Pull complete$/));
    expect(logs.text).not.toContain(login.password);
  });

  it("refuses at submit, 400 naming command.image, a job whose image matches none of the pool's patterns", async () => {
    const res = await api("/v1/jobs", { method: "POST", json: { kind: "command", pool, project, command: { image: `${registry.host}/other/tool:1`, argv: ["/bin/cat", "/marker"] } } });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ field: "command.image", message: expect.stringContaining(`${registry.host}/acme/*`) });
  });
});
