import { JobRequest, WORKFLOW_LIMITS, type JobSpec } from "../../../protocol/index.ts";
import type { Principal } from "../auth/principal.ts";
import { sha256Hex } from "../auth/tokens.ts";
import { AppError } from "../errors.ts";
import type { JobRow } from "../db/jobs.ts";
import { parseWith } from "../middleware/validate.ts";
import { findCycle, topologicalOrder } from "./dependencies.ts";
import { batchItem, batchReferences } from "./references.ts";
import { announceQueued, submitJob, type SubmitContext } from "./submit.ts";

export type BatchItem = { index: number; status: number; job?: JobRow; error?: ReturnType<AppError["toJSON"]>["error"] };


/** An error of a body's part (`jobs.3`, `job`), its field (and the message's leading field) prefixed with the part's. */
export function errorUnder(prefix: string, err: AppError): AppError {
  const field = err.field && !err.field.startsWith(`${prefix}.`) ? `${prefix}.${err.field}` : err.field;
  const message = err.field && err.message.startsWith(`${err.field}: `) ? `${field}: ${err.message.slice(err.field.length + 2)}` : err.message;
  return new AppError(err.code, message, field, err.details);
}

/**
 * Submits up to WORKFLOW_LIMITS.batch_jobs jobs, each on its own as POST /v1/jobs would (one
 * item's refusal leaves the others), in an order where an item comes after the items it names
 * by `$N`, which are replaced by their ids. The batch as a whole is refused only when its
 * references are broken: `$N` out of range or a cycle. With an idempotency key, item i's key is
 * `key#i`, so a retried batch gives the same jobs.
 */
export async function submitBatch(c: SubmitContext, principal: Principal, items: readonly unknown[], key: string | null): Promise<BatchItem[]> {
  const parsed = items.map((item, i) => {
    try {
      return parseWith(JobRequest, item, `jobs.${i}`) as JobSpec;
    } catch (err) {
      if (err instanceof AppError) return err;
      throw err;
    }
  });
  const tasks = parsed.reduce((n, p) => n + (p instanceof AppError ? 0 : p.array && p.array.index === null ? p.array.count : 1), 0);
  if (tasks > WORKFLOW_LIMITS.batch_tasks.max) {
    throw new AppError("payload_too_large", `jobs: the batch makes ${tasks} jobs, array tasks counted; at most ${WORKFLOW_LIMITS.batch_tasks.max} in one batch`, "jobs");
  }
  const edges = parsed.map((p, i) =>
    p instanceof AppError
      ? []
      : batchReferences(p).map((r) => {
          if (r.at >= items.length || r.at === i) throw new AppError("validation_failed", `jobs.${i}.${r.field}: $${r.at} ${r.at === i ? "is this item itself" : `is past the batch's last item (${items.length - 1})`}`, `jobs.${i}.${r.field}`);
          return r.at;
        }),
  );
  const cycle = findCycle(edges);
  if (cycle) {
    const first = cycle[0]!;
    const field = (parsed[first] as JobSpec).depends_on.findIndex((d) => d.job === `$${cycle[1]}`);
    const at = field >= 0 ? `jobs.${first}.depends_on.${field}.job` : `jobs.${first}`;
    throw new AppError("validation_failed", `${at}: a cycle: ${cycle.map((n) => `$${n}`).join(" → ")}`, at);
  }
  const done = new Map<number, JobRow>();
  const results: BatchItem[] = [];
  const shared = { reads: new Map<string, Promise<unknown>>(), pools: new Set<string>(), projects: new Set<string>() };
  const inBatch: SubmitContext = { ...c, shared };
  for (const i of topologicalOrder(edges)) {
    const p = parsed[i]!;
    if (p instanceof AppError) {
      results.push({ index: i, status: p.status, error: p.toJSON().error });
      continue;
    }
    try {
      const spec = bindReferences(p, done);
      const requestHash = key ? await sha256Hex(JSON.stringify(items[i])) : null;
      const { job, created } = await submitJob(inBatch, principal, spec, { idempotencyKey: key ? `${key}#${i}` : null, requestHash });
      done.set(i, job);
      results.push({ index: i, status: created ? 201 : 200, job });
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      const e = errorUnder(`jobs.${i}`, err);
      results.push({ index: i, status: e.status, error: e.toJSON().error });
    }
  }
  announceQueued(c, shared.pools, shared.projects);
  return results.sort((a, b) => a.index - b.index);
}

/** The item with its `$N` references replaced by the ids of the items submitted for them (an array item's: its array). */
function bindReferences(spec: JobSpec, done: ReadonlyMap<number, JobRow>): JobSpec {
  const bound = (ref: string, field: string, artifact: boolean) => {
    const at = batchItem(ref);
    if (at === null) return ref;
    const job = done.get(at);
    if (!job) throw new AppError("validation_failed", `${field}: item ${at} of the batch was not submitted`, field);
    if (artifact && job.arrayId) throw new AppError("validation_failed", `${field}: item ${at} is an array; an artifact comes from one job`, field);
    return artifact ? job.id : (job.arrayId ?? job.id);
  };
  return {
    ...spec,
    depends_on: spec.depends_on.map((d, k) => ({ ...d, job: bound(d.job, `depends_on.${k}.job`, false) })),
    inputs: spec.inputs.map((input, k) => ("artifact" in input ? { ...input, artifact: { ...input.artifact, job: bound(input.artifact.job, `inputs.${k}.artifact.job`, true) } } : input)),
  };
}
