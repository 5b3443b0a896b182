/** How `gridx status` and `gridx array` print a job's place in a workflow: its attempts, usage and relatives. */
import { duration, mib, table } from "./format.ts";

export interface Usage {
  cpu_s: number;
  peak_memory_mb: number;
  gpu_s: number;
  wall_s: number;
}

interface AttemptLine {
  attempt: number;
  worker_id: string;
  worker_name: string | null;
  status: string;
  exit_code: number | null;
  failure_reason: string | null;
  usage: Usage | null;
}

interface Relative {
  job: string;
  condition: string;
  status: string | null;
}

interface Budget {
  attempt: number;
  max_retries: number;
  retry: { on: string[]; exit_codes?: number[] | undefined; max: number; backoff_s: number } | null;
}

/** `12.3s cpu, 512 MiB peak, 0s gpu, 14.0s wall`. */
export const usageText = (u: Usage) => `${duration(u.cpu_s * 1000)} cpu, ${mib(Math.round(u.peak_memory_mb))} peak, ${duration(u.gpu_s * 1000)} gpu, ${duration(u.wall_s * 1000)} wall`;

/**
 * `2 of up to 4 (retries exit_code 3,4, oom after 10s, doubling)`: a lost worker is retried
 * under `max_retries` or the policy, whichever allows more, as the control plane decides.
 */
export function attemptText(j: Budget): string {
  const retries = Math.max(j.max_retries, j.retry?.max ?? 0);
  const policy = j.retry
    ? ` (retries ${j.retry.on.map((o) => (o === "exit_code" && j.retry!.exit_codes ? `exit_code ${j.retry!.exit_codes.join(",")}` : o)).join(", ")}, up to ${j.retry.max}, after ${duration(j.retry.backoff_s * 1000)}, doubling)`
    : "";
  return `${j.attempt} of up to ${retries + 1}${policy}`;
}

/** How one attempt ended: `running`, `exit 0`, `exit 3`, `oom`, `worker lost`. */
export function attemptOutcome(a: Pick<AttemptLine, "status" | "exit_code" | "failure_reason">): string {
  if (a.status === "lost") return "worker lost";
  if (a.status !== "finished") return a.status;
  if (a.failure_reason && a.failure_reason !== "exit_code") return a.failure_reason;
  return a.exit_code === null ? "finished" : `exit ${a.exit_code}`;
}

/** Every attempt, first to latest, with its worker, outcome and usage. */
export const attemptsTable = (attempts: AttemptLine[]) =>
  table(
    ["ATTEMPT", "WORKER", "OUTCOME", "USAGE"],
    attempts.map((a) => [String(a.attempt), a.worker_name ?? a.worker_id, attemptOutcome(a), a.usage ? usageText(a.usage) : "-"]),
  );

/** Relatives shown on one line before `and N more` (a job may have 1000 children). */
const RELATIVES_SHOWN = 10;

/** `j_1 completed (needs completed), a_2 (array, needs finished) and 3 more`. */
export function relativesText(list: Relative[]): string {
  const shown = list.slice(0, RELATIVES_SHOWN).map((r) => `${r.job} ${r.status ? `${r.status} (needs ${r.condition})` : `(array, needs ${r.condition})`}`);
  return shown.join(", ") + (list.length > RELATIVES_SHOWN ? ` and ${list.length - RELATIVES_SHOWN} more` : "");
}
