import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freePort, issueAgentToken, startAgent } from "../../scripts/local-grid.ts";
import { cp, ownControlPlane } from "./helpers.ts";

describe("a control-plane restart", () => {
  it("loses nothing: a running job finishes, a job queued while no agent was there runs when one returns", async () => {
    const dir = mkdtempSync(join(cp().stateDir, "restart-"));
    const port = await freePort();
    let plane = await ownControlPlane(dir, port);
    const call = async (path: string, init: RequestInit = {}) => {
      const res = await fetch(plane.url + path, { ...init, headers: { authorization: `Bearer ${plane.adminToken}`, "content-type": "application/json" } });
      return (await res.json()) as any;
    };
    const token = await issueAgentToken(plane, "survivor");
    const agent = startAgent({ url: plane.url, token, name: "survivor", stateDir: join(dir, "agent") });
    try {
      const running = await call("/v1/jobs", { method: "POST", body: JSON.stringify({ kind: "python", python: { script: "import time\nprint('before', flush=True)\ntime.sleep(6)\nprint('after')" } }) });
      for (let i = 0; i < 300 && !(await call(`/v1/jobs/${running.id}`)).stdout.includes("before"); i++) await new Promise((r) => setTimeout(r, 100));

      await plane.stop();
      plane = await ownControlPlane(dir, port);
      const queued = await call("/v1/jobs", { method: "POST", body: JSON.stringify({ kind: "python", python: { script: "print('queued through a restart')" } }) });

      const wait = async (id: string) => {
        for (let i = 0; i < 600; i++) {
          const job = await call(`/v1/jobs/${id}`);
          if (["completed", "failed", "canceled"].includes(job.status)) return job;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`job ${id} did not finish`);
      };
      expect(await wait(running.id)).toMatchObject({ status: "completed", attempt: 1, stdout: "before\nafter\n" });
      expect(await wait(queued.id)).toMatchObject({ status: "completed", stdout: "queued through a restart\n" });
    } finally {
      await agent.stop("SIGTERM");
      await plane.stop();
    }
  });
});
