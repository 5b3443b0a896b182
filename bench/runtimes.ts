import { join } from "node:path";
import { ROOT, runCommand } from "../scripts/local-grid.ts";
import type { Figure } from "./stats.ts";

/**
 * 9. Jobs under runc and gVisor through the agent's own runner (scripts/runtime-bench.ts),
 * run apart so that the agent's modules keep Node's types; its last line is the figures.
 */
export async function benchRuntimes(runs: number): Promise<Figure[]> {
  const out = await runCommand(process.execPath, ["--import", "tsx", join(ROOT, "scripts", "runtime-bench.ts"), String(runs)]);
  return JSON.parse(out.trim().split("\n").at(-1)!) as Figure[];
}
