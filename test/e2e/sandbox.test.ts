import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { api, isDone, launchOnlineAgent, submit, uniqueName, waitForJob } from "./helpers.ts";

const python = (script: string, extra: Record<string, unknown> = {}) => ({ kind: "python", python: { script }, ...extra });

/** What a job sees of its kernel and network, as one JSON line. */
const REPORT = [
  "import json, os",
  "kernel = open('/proc/version').read().strip()",
  "print(json.dumps({'kernel': kernel, 'ifaces': sorted(os.listdir('/sys/class/net')), 'uid': os.getuid()}))",
].join("\n");

describe("a pool's sandbox policy on a real grid", () => {
  const pool = uniqueName("sandbox");
  let agent: AgentProcess & { worker: { caps: { runtimes: string[]; egress: boolean } } };

  beforeAll(async () => {
    agent = await launchOnlineAgent({ pool, name: uniqueName("sandbox-node"), slots: 2 });
  });

  afterAll(async () => {
    await agent?.stop("SIGTERM");
  });

  it("the agent reports gVisor and the filtered network among its capabilities", () => {
    expect(agent.worker.caps).toMatchObject({ runtimes: ["runc", "gvisor"], egress: true });
  });

  it("runs a job under gVisor when the pool makes it the default, and under runc when the job asks", async () => {
    expect((await api(`/v1/pools/${pool}/sandbox`, { method: "PUT", json: { default_runtime: "gvisor" } })).status).toBe(200);
    const sandboxed = await waitForJob((await submit(python(REPORT, { pool }))).id, isDone);
    expect(sandboxed.status).toBe("completed");
    const seen = JSON.parse(sandboxed.stdout);
    // gVisor's Sentry answers with its own fixed kernel version; the host's is a real release.
    const host = (await import("node:os")).release();
    expect(seen.kernel).not.toContain(host);
    expect(seen).toMatchObject({ ifaces: ["lo"], uid: 1000 });
    expect((await api(`/v1/jobs/${sandboxed.id}`)).json.spec.runtime).toBe("gvisor");

    const plain = await waitForJob((await submit(python(REPORT, { pool, runtime: "runc" }))).id, isDone);
    expect(JSON.parse(plain.stdout).kernel).toContain(host);
  });

  it("gives an egress job a network interface where the pool allows it; other jobs keep none", async () => {
    expect(await submit(python(REPORT, { pool, network: "egress", runtime: "runc" })).catch((err: Error) => err.message)).toMatch(/400.*does not allow egress/);
    expect((await api(`/v1/pools/${pool}/sandbox`, { method: "PUT", json: { egress: true } })).status).toBe(200);
    // The pool's default is gVisor by now, whose runtime has no networking: egress jobs name runc.
    const egress = await waitForJob((await submit(python(REPORT, { pool, network: "egress", runtime: "runc" }))).id, isDone);
    expect(egress.status).toBe("completed");
    expect(JSON.parse(egress.stdout).ifaces).toEqual(["eth0", "lo"]);
    const none = await waitForJob((await submit(python(REPORT, { pool }))).id, isDone);
    expect(JSON.parse(none.stdout).ifaces).toEqual(["lo"]);
  });
});
