/** The host's FUZZ_SEED, FUZZ_PATH and FUZZ_RUNS, to replay or widen a fuzz run. */
export type FuzzSettings = { seed: string; path: string; runs: string };

// workerd tests cannot read the host's environment: vitest.config.mts provides these.
declare module "vitest" {
  export interface ProvidedContext {
    fuzz: FuzzSettings;
  }
}
