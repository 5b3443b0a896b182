import { issueAgentToken } from "../scripts/local-grid.ts";
import { benchControlPlane, idleUsage, sleep } from "./grid.ts";
import { SimAgent } from "./sim-agent.ts";
import { round, type Figure } from "./stats.ts";

/**
 * 3. Many connected agents on one coordinator: the control plane's memory and CPU while they
 * only heartbeat, and how long they take to all come back after a control-plane restart.
 */
export async function benchFleet(count: number, idleWindowMs: number): Promise<Figure[]> {
  let cp = await benchControlPlane();
  const token = await issueAgentToken(cp, "fleet", "bench-fleet");
  const agents = Array.from({ length: count }, (_, i) => new SimAgent(cp.url, token, `fleet-${i}`, 1));
  try {
    const t0 = performance.now();
    for (const [i, a] of agents.entries()) {
      a.start();
      if (i % 100 === 99) await sleep(50);
    }
    while (agents.some((a) => a.connectedAt === null)) await sleep(100);
    const joined = performance.now() - t0;
    const idle = await idleUsage(cp.process.pid!, idleWindowMs);

    await cp.stop();
    cp = await benchControlPlane({ port: cp.port, dir: cp.dir });
    const back = performance.now();
    while (agents.some((a) => a.connectedAt === null)) await sleep(100);
    const reconnect = performance.now() - back;
    return [
      { section: "3 fleet", name: `${count} agents connected in`, value: round(joined / 1000, 2), unit: "s" },
      { section: "3 fleet", name: "control plane RSS, idle", value: round(idle.rssMb), unit: "MiB" },
      { section: "3 fleet", name: "control plane CPU, idle", value: round(idle.cpuPercent, 2), unit: "% of a core" },
      { section: "3 fleet", name: "all reconnected after restart", value: round(reconnect / 1000, 2), unit: "s" },
    ];
  } finally {
    agents.forEach((a) => a.stop());
    await cp.stop();
  }
}
