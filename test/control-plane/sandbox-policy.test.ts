import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { HEARTBEAT_FRAME } from "../../protocol/index.ts";
import { pollUntil } from "../helpers/poll.ts";
import { agentToken, api, caps, FakeAgent, newProject, submit, uniquePool, userToken, waitForJob } from "./helpers.ts";

const putPolicy = (pool: string, json: unknown, token?: string) => api(`/v1/pools/${pool}/sandbox`, { method: "PUT", json, token });
const command = (image: string, extra: Record<string, unknown> = {}) => ({ kind: "command", python: undefined, command: { image, argv: ["true"], ...extra } });

describe("a pool's sandbox policy", () => {
  it("has visible defaults until the admin sets it, and stores it with every default filled in", async () => {
    const pool = uniquePool();
    const before = await api(`/v1/pools/${pool}/sandbox`);
    expect(before.status).toBe(200);
    expect(before.json).toEqual({
      pool,
      sandbox: { default_runtime: "runc", runtimes: ["runc", "gvisor"], egress: false, egress_allow: [], build_network: "egress", images: [], exec: true },
      updated_at: null,
      updated_by: null,
    });
    const put = await putPolicy(pool, { default_runtime: "gvisor", egress: true, egress_allow: ["203.0.113.0/24", "pypi.org"] });
    expect(put.status).toBe(200);
    expect(put.json).toMatchObject({ pool, sandbox: { default_runtime: "gvisor", runtimes: ["runc", "gvisor"], egress: true, egress_allow: ["203.0.113.0/24", "pypi.org"], images: [] }, updated_by: "admin" });
    expect((await api(`/v1/pools/${pool}/sandbox`)).json.sandbox.default_runtime).toBe("gvisor");
    const audit = await api(`/v1/audit?action=pool.sandbox`);
    expect(audit.json.events.find((e: { target: string }) => e.target === pool)).toMatchObject({ action: "pool.sandbox", actor: "admin" });
  });

  it("is the admin's to set: a project owner gets 403, and anyone signed in may read it", async () => {
    const pool = uniquePool();
    const owner = await userToken({ project: await newProject(), role: "owner" });
    const refused = await putPolicy(pool, { egress: true }, owner.token);
    expect(refused.status).toBe(403);
    expect((await api(`/v1/pools/${pool}/sandbox`, { token: owner.token })).status).toBe(200);
    expect((await api(`/v1/pools/${pool}/sandbox`, { token: null })).status).toBe(401);
  });

  it("refuses a bad policy naming the field", async () => {
    const pool = uniquePool();
    const cases: [unknown, string][] = [
      [{ default_runtime: "kata" }, "default_runtime"],
      [{ runtimes: [] }, "runtimes"],
      [{ runtimes: ["gvisor"], default_runtime: "runc" }, "default_runtime"],
      [{ egress_allow: ["10.0.0.0/33"] }, "egress_allow.0"],
      [{ egress_allow: ["not a host"] }, "egress_allow.0"],
      [{ images: ["Ghcr.io/UPPER"] }, "images.0"],
      [{ build_network: "bridge" }, "build_network"],
      [{ shell: true }, "shell"],
    ];
    const answers = [];
    for (const [policy] of cases) {
      const res = await putPolicy(pool, policy);
      answers.push([res.status, res.json.error?.field]);
    }
    expect(answers).toEqual(cases.map(([, field]) => [400, field]));
  });
});

describe("submitting under a pool's policy", () => {
  it("stores the pool's default runtime in the job, and refuses a runtime the pool does not run", async () => {
    const pool = uniquePool();
    await putPolicy(pool, { default_runtime: "gvisor", runtimes: ["gvisor"] });
    const job = await submit({ pool });
    expect(job.status).toBe(201);
    expect(job.json.spec).toMatchObject({ runtime: "gvisor", network: "none" });
    const refused = await submit({ pool, runtime: "runc" });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatchObject({ field: "runtime", message: expect.stringContaining(`pool ${pool} runs jobs under gvisor, not runc`) });
    expect((await submit({ pool, runtime: "kata" })).json.error.field).toBe("runtime");
    const gpu = await submit({ pool, requirements: { gpus: 1 } });
    expect(gpu.json.error).toMatchObject({ field: "runtime", message: expect.stringContaining("GPU jobs run under runc") });
  });

  it("says nothing of a pool's policy to someone outside the job's project", async () => {
    const outsider = await userToken({ project: await newProject(), role: "member" });
    const res = await api("/v1/jobs", { method: "POST", token: outsider.token, json: { kind: "python", python: { script: "x" }, project: await newProject(), pool: uniquePool(), network: "egress" } });
    expect(res.status).toBe(404);
    expect(res.text).not.toContain("egress");
  });

  it("refuses egress in a pool that does not allow it, and takes it where the admin allowed it", async () => {
    const pool = uniquePool();
    const refused = await submit({ pool, network: "egress" });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatchObject({ field: "network", message: expect.stringContaining("does not allow egress") });
    await putPolicy(pool, { egress: true });
    expect((await submit({ pool, network: "egress" })).json.spec.network).toBe("egress");
    const gvisor = await submit({ pool, network: "egress", runtime: "gvisor" });
    expect(gvisor.json.error).toMatchObject({ field: "network", message: expect.stringContaining('"runtime": "runc"') });
  });

  it("admits command images from ALLOWED_IMAGES or the pool's patterns only", async () => {
    const pool = uniquePool();
    await putPolicy(pool, { images: ["127.0.0.1:5000/acme/*"] });
    expect((await submit({ pool, ...command("127.0.0.1:5000/acme/tool:1") })).status).toBe(201);
    expect((await submit({ pool, ...command("busybox:1") })).status).toBe(201);
    const refused = await submit({ pool, ...command("127.0.0.1:5000/other/tool:1") });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatchObject({ field: "command.image", message: expect.stringContaining("127.0.0.1:5000/acme/*") });
    // Another pool's patterns are not this one's.
    expect((await submit({ pool: uniquePool(), ...command("127.0.0.1:5000/acme/tool:1") })).json.error.field).toBe("command.image");
    // A jupyter job's own image is held to the same list; without one it runs the runner image.
    const jupyter = (image?: string) => ({ kind: "jupyter", python: undefined, jupyter: image ? { image } : {} });
    expect((await submit({ pool, ...jupyter("127.0.0.1:5000/acme/lab:1") })).status).toBe(201);
    expect((await submit({ pool, ...jupyter("127.0.0.1:5000/other/lab:1") })).json.error).toMatchObject({ field: "jupyter.image" });
    expect((await submit({ pool, ...jupyter() })).status).toBe(201);
  });

  it("checks that a command job's registry credentials are a secret of its own project", async () => {
    const pool = uniquePool();
    await putPolicy(pool, { images: ["127.0.0.1:5000/acme/*"] });
    const [a, b] = [await newProject(), await newProject()];
    await api(`/v1/projects/${a}/secrets/registry`, { method: "PUT", json: { value: "robot:pa55word-1234" } });
    const refused = await submit({ pool, project: b, ...command("127.0.0.1:5000/acme/tool:1", { registry_credentials: "registry" }) });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatchObject({ field: "command.registry_credentials", message: expect.stringContaining(`project ${b} has no secret registry`) });

    const { agent } = await FakeAgent.join(await agentToken(pool));
    const job = (await submit({ pool, project: a, ...command("127.0.0.1:5000/acme/tool:1", { registry_credentials: "registry" }) })).json;
    expect(JSON.stringify(job)).not.toContain("pa55word");
    const assign = await agent.next("assign_job");
    expect(assign.payload).toMatchObject({ job_id: job.id, credentials: { registry: "robot:pa55word-1234" } });
    agent.close();
  });

  it("raises a reservation below the limits to them, so a worker is never over-committed", async () => {
    const res = await submit({ pool: uniquePool(), requirements: { memory_mb: 16, cpus: 0.05 }, limits: { memory_mb: 20000, cpus: 2, pids: 65536 } });
    expect(res.status).toBe(201);
    expect(res.json.spec.requirements).toMatchObject({ memory_mb: 20000, cpus: 2 });
    // A reservation above the limits stands: it picks a bigger machine.
    const bigger = await submit({ pool: uniquePool(), requirements: { memory_mb: 4096 }, limits: { memory_mb: 512 } });
    expect(bigger.json.spec.requirements.memory_mb).toBe(4096);
  });
});

describe("dispatch under a pool's policy", () => {
  it("gives a gvisor job only to a worker that offers gvisor, and tells the agent its sandbox", async () => {
    const pool = uniquePool();
    await putPolicy(pool, { egress: true, egress_allow: ["203.0.113.7"], build_network: "none" });
    const plain = await FakeAgent.join(await agentToken(pool, "plain"), { name: "plain" });
    const gvisor = await FakeAgent.join(await agentToken(pool, "gv"), { name: "gv", caps: caps({ runtimes: ["runc", "gvisor"] }) });
    const sandboxed = (await submit({ pool, runtime: "gvisor" })).json;
    expect((await gvisor.agent.next("assign_job")).payload).toMatchObject({
      job_id: sandboxed.id,
      sandbox: { runtime: "gvisor", network: "none", egress_allow: ["203.0.113.7"], build_network: "none" },
    });
    // The plain worker was idle all along; the next job it gets is the runc one submitted after.
    const ordinary = (await submit({ pool })).json;
    expect((await plain.agent.next("assign_job")).payload).toMatchObject({ job_id: ordinary.id, sandbox: { runtime: "runc", network: "none" } });
    plain.agent.close();
    gvisor.agent.close();
  });

  it("says why a queued job waits when no online worker of its pool offers its sandbox", async () => {
    const pool = uniquePool();
    await putPolicy(pool, { egress: true });
    const { agent } = await FakeAgent.join(await agentToken(pool));
    const gvisor = (await submit({ pool, runtime: "gvisor" })).json;
    const egress = (await submit({ pool, network: "egress" })).json;
    expect((await api(`/v1/jobs/${gvisor.id}`)).json).toMatchObject({ status: "queued", pending_reason: `no online worker in pool ${pool} offers gvisor` });
    expect((await api(`/v1/jobs/${egress.id}`)).json.pending_reason).toBe(`no online worker in pool ${pool} offers the filtered egress network`);
    const listed = (await api(`/v1/jobs?pool=${pool}`)).json.jobs;
    expect(listed.find((j: { id: string }) => j.id === gvisor.id).pending_reason).toContain("offers gvisor");
    // Once such a worker is online, the job is just waiting for it.
    const sandboxed = await FakeAgent.join(await agentToken(pool, "gv"), { name: "gv", caps: caps({ runtimes: ["runc", "gvisor"] }) });
    expect((await sandboxed.agent.next("assign_job")).payload.job_id).toBe(gvisor.id);
    agent.close();
    sandboxed.agent.close();
  });

  it("gives an egress job only to a worker whose agent filters egress", async () => {
    const pool = uniquePool();
    await putPolicy(pool, { egress: true });
    const unfiltered = await FakeAgent.join(await agentToken(pool, "u"), { name: "u" });
    const filtered = await FakeAgent.join(await agentToken(pool, "f"), { name: "f", caps: caps({ egress: true }) });
    // Heartbeats, so a slow machine does not declare them offline (WORKER_TIMEOUT_S is 2 in tests).
    const beat = setInterval(() => [unfiltered, filtered].forEach((w) => w.agent.closed || w.agent.sendRaw(HEARTBEAT_FRAME)), 300);
    try {
      const job = (await submit({ pool, network: "egress" })).json;
      expect((await filtered.agent.next("assign_job")).payload).toMatchObject({ job_id: job.id, sandbox: { network: "egress" } });
      const after = (await submit({ pool })).json;
      expect((await unfiltered.agent.next("assign_job")).payload.job_id).toBe(after.id);
    } finally {
      clearInterval(beat);
      unfiltered.agent.close();
      filtered.agent.close();
    }
  });

  it("fails a queued job that the policy stopped admitting since its submit, saying why", async () => {
    const pool = uniquePool();
    await putPolicy(pool, { egress: true });
    const job = (await submit({ pool, network: "egress" })).json;
    await putPolicy(pool, { egress: false });
    const { agent } = await FakeAgent.join(await agentToken(pool), { caps: caps({ egress: true }) });
    const failed = await waitForJob(job.id, (j) => j.status === "failed");
    expect(failed).toMatchObject({ failure_reason: "input_error" });
    expect(failed.failure_message).toContain("sandbox policy changed since submit: network");
    agent.close();
  });

  it("does not re-send, to a reconnecting agent, an assignment the policy stopped admitting: the start bound takes it back and dispatch fails it", async () => {
    const pool = uniquePool();
    await putPolicy(pool, { egress: true });
    const token = await agentToken(pool);
    const first = await FakeAgent.join(token, { name: "re", caps: caps({ egress: true }) });
    const job = (await submit({ pool, network: "egress" })).json;
    expect((await first.agent.next("assign_job")).payload).toMatchObject({ job_id: job.id, sandbox: { network: "egress" } });
    await putPolicy(pool, { egress: false });
    first.agent.close();
    // The assignment was never taken: a reconnect would have it sent again, as it was.
    const again = await FakeAgent.join(token, { name: "re", caps: caps({ egress: true }) });
    // Alive while the start bound runs out, so the attempt is taken back, not lost with a silent worker.
    const failed = await pollUntil(
      async () => {
        again.agent.sendRaw(HEARTBEAT_FRAME);
        return (await api(`/v1/jobs/${job.id}`)).json;
      },
      (j) => j.status === "failed",
      { timeoutMs: 15_000, intervalMs: 200, what: `job ${job.id} failed` },
    );
    expect(failed.failure_message).toContain("sandbox policy changed since submit: network");
    // A re-send goes out with the hello's answer, seconds before the start bound could fail the job.
    await expect(again.agent.next("assign_job", 50)).rejects.toThrow("no assign_job");
    again.agent.close();
  });

  it("runs a spec stored before runtimes existed under runc, so a gVisor-only pool fails it rather than running it under runc", async () => {
    const pool = uniquePool();
    const job = (await submit({ pool })).json;
    await env.DB.prepare("UPDATE jobs SET spec = json_remove(spec, '$.runtime', '$.network') WHERE id = ?").bind(job.id).run();
    await putPolicy(pool, { default_runtime: "gvisor", runtimes: ["gvisor"] });
    const { agent } = await FakeAgent.join(await agentToken(pool), { caps: caps({ runtimes: ["runc", "gvisor"] }) });
    const failed = await waitForJob(job.id, (j) => j.status === "failed");
    expect(failed.failure_message).toContain("runtime: pool " + pool + " runs jobs under gvisor, not runc");
    agent.close();
  });

  it("shows each worker's runtimes and egress", async () => {
    const pool = uniquePool();
    const { agent } = await FakeAgent.join(await agentToken(pool), { caps: caps({ runtimes: ["runc", "gvisor"], egress: true }) });
    const workers = (await api(`/v1/workers?pool=${pool}`)).json.workers;
    expect(workers[0].caps).toMatchObject({ runtimes: ["runc", "gvisor"], egress: true });
    // A worker stored before agents reported them reads as runc only, without egress.
    await env.DB.prepare("UPDATE workers SET caps = json_remove(caps, '$.runtimes', '$.egress') WHERE pool = ?").bind(pool).run();
    expect((await api(`/v1/workers?pool=${pool}`)).json.workers[0].caps).toMatchObject({ runtimes: ["runc"], egress: false });
    agent.close();
  });
});
