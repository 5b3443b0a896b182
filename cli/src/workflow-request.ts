import type { ParseArgsOptionsConfig } from "node:util";
// Types only: the server checks every bound (and the CLI starts without loading zod).
import type { JobRequest, RetryOn } from "../../protocol/index.ts";
import { integer, seconds } from "./args.ts";
import { UsageError } from "./errors.ts";

/** The flags of `submit` and `run` that place a job in a workflow: its array, what it waits for, how it is retried. */
export const WORKFLOW_FLAGS = {
  array: { type: "string" },
  after: { type: "string", multiple: true },
  "retry-on": { type: "string" },
  "retry-exit-codes": { type: "string" },
  "retry-backoff": { type: "string" },
  "queue-ttl": { type: "string" },
  artifact: { type: "string", multiple: true },
} as const satisfies ParseArgsOptionsConfig;

export const WORKFLOW_FLAGS_HELP = `  --array N                    N tasks of the same job, each seeing GRIDX_ARRAY_INDEX (0 to N-1);
                               {index} in --input and --artifact becomes it (gridx array ID
                               shows them all)
  --after ID[:finished]        start once job (or array a_…) ID has completed; :finished waits
                               for it to end however it ends (repeat)
  --retry-on OUTCOMES          retry failed attempts that ended so: exit_code, oom, timeout,
                               worker_lost, comma-separated
  --retries N                  with --retry-on, the most retries (default 1); without it, the
                               tries after a lost worker (default 2)
  --retry-exit-codes 3,4       with --retry-on exit_code, only these codes are retried
  --retry-backoff DUR          the wait before a retry, doubled for each further one (default 10s)
  --queue-ttl DUR              fail the job unschedulable when it waits this long, ready, and no
                               worker takes it
  --artifact JOB:NAME[:PATH]   mount the artifact NAME of job JOB read-only at /work/input/PATH
                               (default: NAME) (repeat)`;

type WorkflowFlags = { [K in keyof typeof WORKFLOW_FLAGS]?: (typeof WORKFLOW_FLAGS)[K] extends { multiple: true } ? string[] : string } & { retries?: string };

type Dependency = NonNullable<JobRequest["depends_on"]>[number];
type RetryRequest = NonNullable<JobRequest["retry"]>;

const RETRY_OUTCOMES: readonly RetryOn[] = ["exit_code", "oom", "timeout", "worker_lost"];

/** `ID` or `ID:completed` / `ID:finished`, for `--after`. */
function dependency(raw: string): Dependency {
  const [job, condition = "completed", ...rest] = raw.split(":");
  if (!job || rest.length || (condition !== "completed" && condition !== "finished")) {
    throw new UsageError(`--after takes ID or ID:finished (ID a job j_… or an array a_…), not "${raw}"`);
  }
  return { job, condition };
}

/** `JOB:NAME[:PATH]`, for `--artifact`: the input mounts at NAME when no PATH is given. */
export function artifactInput(raw: string): { artifact: { job: string; name: string }; path: string } {
  const [job, name, path = name, ...rest] = raw.split(":");
  if (!job || !name || !path || rest.length) throw new UsageError(`--artifact takes JOB:NAME[:PATH], such as j_01abc:model.pt or j_01abc:out/model.pt:model.pt, not "${raw}"`);
  return { artifact: { job, name }, path };
}

/** `a,b,c` for a list flag, each part checked by `item`. */
const list = <T>(raw: string, item: (part: string) => T): T[] => raw.split(",").map((p) => item(p.trim()));

function retryPolicy(flags: WorkflowFlags): RetryRequest | undefined {
  const on = flags["retry-on"];
  if (on === undefined) {
    const orphan = (["retry-exit-codes", "retry-backoff"] as const).find((f) => flags[f] !== undefined);
    if (orphan) throw new UsageError(`--${orphan} goes with --retry-on, which names the outcomes to retry`);
    return undefined;
  }
  const outcomes = list(on, (o) => {
    if (!(RETRY_OUTCOMES as readonly string[]).includes(o)) throw new UsageError(`--retry-on takes ${RETRY_OUTCOMES.join(", ")} (comma-separated), not "${o}"`);
    return o as RetryOn;
  });
  const codes = flags["retry-exit-codes"];
  if (codes !== undefined && !outcomes.includes("exit_code")) throw new UsageError("--retry-exit-codes needs exit_code in --retry-on");
  return {
    on: outcomes,
    ...(codes !== undefined ? { exit_codes: list(codes, (c) => integer("--retry-exit-codes", c, 1, 255)) } : {}),
    ...(flags.retries !== undefined ? { max: integer("--retries", flags.retries) } : {}),
    ...(flags["retry-backoff"] !== undefined ? { backoff_s: seconds("--retry-backoff", flags["retry-backoff"]) } : {}),
  };
}

/**
 * The request fields the workflow flags set (`--artifact`'s inputs are the caller's, beside
 * `--input`'s). `--retries` is the policy's `max` under `--retry-on`, else the older
 * lost-worker `max_retries`, so scripts written before retry policies keep their meaning.
 *
 * @example
 * workflowFields({ array: "10", after: ["j_01a:finished"], "retry-on": "oom", retries: "3" })
 * // { array: { count: 10 }, depends_on: [{ job: "j_01a", condition: "finished" }], retry: { on: ["oom"], max: 3 } }
 */
export function workflowFields(flags: WorkflowFlags) {
  const retry = retryPolicy(flags);
  const after = (flags.after ?? []).map(dependency);
  return {
    ...(flags.array !== undefined ? { array: { count: integer("--array", flags.array, 1) } } : {}),
    ...(after.length ? { depends_on: after } : {}),
    ...(retry ? { retry } : flags.retries !== undefined ? { max_retries: integer("--retries", flags.retries) } : {}),
    ...(flags["queue-ttl"] !== undefined ? { queue_ttl_s: seconds("--queue-ttl", flags["queue-ttl"]) } : {}),
  };
}
