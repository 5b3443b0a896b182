import * as fc from "fast-check";
import { inject } from "vitest";
import type { FuzzSettings } from "../helpers/fuzz-settings.ts";

/**
 * Bounds on one property: a run that hangs fails at `runMs`; after `totalMs` the property
 * stops (shrinking included) and reports what it has, so the seed is printed before vitest's
 * own timeout (`testTimeoutMs`) would swallow it. A run widened with FUZZ_RUNS is long on
 * purpose: it has no total, and its test allows `runMs` per run.
 */
const FUZZ_LIMITS = { runMs: 10_000, totalMs: 30_000, testTimeoutMs: 60_000 } as const;

/** The timeout of a test that runs `numRuns` cases of a property (FUZZ_RUNS overrides). */
export function fuzzTestTimeoutMs(): number {
  const { runs }: FuzzSettings = inject("fuzz");
  return runs ? Number(runs) * FUZZ_LIMITS.runMs : FUZZ_LIMITS.testTimeoutMs;
}

/**
 * Runs an async property `numRuns` times (FUZZ_RUNS overrides) and fails with its seed, path
 * and the command that replays the failing case. `name` is the test's full name (the replay
 * selects it with `-t`).
 *
 * @example
 * await checkProperty("GET /health", fc.asyncProperty(arb, async (x) => { ... }), 30, "test/control-plane/fuzz-routes.test.ts");
 */
export async function checkProperty<Ts extends [unknown, ...unknown[]]>(name: string, property: fc.IAsyncProperty<Ts>, numRuns: number, file: string): Promise<void> {
  const { seed, path, runs }: FuzzSettings = inject("fuzz");
  const details = await fc.check(property, {
    numRuns: runs ? Number(runs) : numRuns,
    ...(seed ? { seed: Number(seed) } : {}),
    ...(path ? { path } : {}),
    plugins: [fc.timeout(FUZZ_LIMITS.runMs), ...(runs ? [] : [fc.interruptAfterTimeLimit(FUZZ_LIMITS.totalMs)])],
  });
  if (details.interrupted && !details.failed) console.warn(`${name}: stopped at the ${FUZZ_LIMITS.totalMs} ms limit after ${details.numRuns} runs (seed ${details.seed})`);
  if (!details.failed) return;
  const only = `^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`.replace(/'/g, "'\\''");
  const replay = `FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath ?? ""} npx vitest run --project workers ${file} -t '${only}'`;
  const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  throw new Error(`${name}: seed ${details.seed}; replay with\n  ${replay}\n${cause}\n${await fc.asyncDefaultReportMessage(details)}`);
}
