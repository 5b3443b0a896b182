import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { issueAgentToken, startAgent } from "../scripts/local-grid.ts";
import { call, idleUsage, sleep } from "./grid.ts";
import type { BenchPlane } from "./grid.ts";
import { round, type Figure } from "./stats.ts";

/** 5. The agent's resident memory and CPU while connected and idle. */
export async function benchFootprint(cp: BenchPlane, settleMs: number, windowMs: number): Promise<Figure[]> {
  const pool = "bench-footprint";
  const agent = startAgent({ url: cp.url, token: await issueAgentToken(cp, "fp", pool), name: "footprint", stateDir: mkdtempSync(join(cp.dir, "fp-")) });
  try {
    while (!(await call(cp, "GET", `/v1/workers?pool=${pool}`)).workers.some((w: { status: string }) => w.status === "online")) await sleep(100);
    await sleep(settleMs);
    const idle = await idleUsage(agent.process.pid!, windowMs);
    return [
      { section: "5 footprint", name: "agent RSS, idle", value: round(idle.rssMb), unit: "MiB", target: "<= 80" },
      { section: "5 footprint", name: "agent CPU, idle", value: round(idle.cpuPercent, 2), unit: "% of a core" },
    ];
  } finally {
    await agent.stop("SIGTERM");
  }
}
