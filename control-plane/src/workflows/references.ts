import { expandIndex, inputSource, type DependencyCondition, type JobInput, type JobSpec, type JobStatus } from "../../../protocol/index.ts";
import { artifactKey, artifactSources } from "../db/artifacts.ts";
import type { Db } from "../db/client.ts";
import { AppError } from "../errors.ts";

/** A job's edges and inputs with every reference checked against its project and resolved. */
export interface ResolvedWorkflow {
  edges: { parent: string; kind: "job" | "array"; condition: DependencyCondition }[];
  /** The job's inputs, datasets named by id; an array's template as written when its inputs are templated. */
  inputs: JobInput[];
  /** Each task's own inputs, when they differ by `{index}`; else null. */
  taskInputs: JobInput[][] | null;
}

const refused = (field: string, message: string) => new AppError("validation_failed", `${field}: ${message}`, field);
const hasIndex = (i: JobInput) => JSON.stringify(i).includes("{index}");

/**
 * Checks what a job names outside itself: its parents and its artifact inputs must be jobs (or
 * arrays) of its own project, another project's reading as one that does not exist; its
 * datasets too, named by id or by name (the newest of that name). An artifact of a job that has
 * not completed must come from a parent, so the job waits for it. `$N` references are a batch's
 * (batch.ts replaces them before this).
 */
export async function resolveWorkflow(db: Db, spec: JobSpec, arrayCount: number | null): Promise<ResolvedWorkflow> {
  const edges = await resolveDependencies(db, spec);
  const count = arrayCount ?? 1;
  const templated = arrayCount !== null && spec.inputs.some(hasIndex);
  const perTask = templated ? Array.from({ length: count }, (_, i) => taskInputs(spec.inputs, i)) : [spec.inputs];
  const resolved = await resolveInputs(db, spec, perTask, edges, templated);
  return { edges, inputs: templated ? spec.inputs : resolved[0]!, taskInputs: templated ? resolved : null };
}

/** The batch item `$N` names (N), or null for an id. */
export const batchItem = (ref: string) => (ref.startsWith("$") ? Number(ref.slice(1)) : null);

/** The batch items a job names by `$N`, in its dependencies and its artifact inputs, with the field of each. */
export function batchReferences(spec: Pick<JobSpec, "depends_on" | "inputs">): { field: string; at: number }[] {
  return [
    ...spec.depends_on.map((d, k) => ({ field: `depends_on.${k}.job`, at: batchItem(d.job) })),
    ...spec.inputs.map((input, k) => ({ field: `inputs.${k}.artifact.job`, at: "artifact" in input ? batchItem(input.artifact.job) : null })),
  ].filter((r): r is { field: string; at: number } => r.at !== null);
}

/** `$N` names an item of a batch: anywhere else (a single submit, a schedule's job) it names nothing. Throws naming the field under `prefix`. */
export function refuseBatchReferences(spec: Pick<JobSpec, "depends_on" | "inputs">, prefix = ""): void {
  const first = batchReferences(spec)[0];
  if (!first) return;
  const field = prefix ? `${prefix}.${first.field}` : first.field;
  throw refused(field, `$${first.at} names an item of a batch: submit the jobs together with POST /v1/jobs/batch`);
}

async function resolveDependencies(db: Db, spec: JobSpec): Promise<ResolvedWorkflow["edges"]> {
  refuseBatchReferences(spec);
  if (spec.depends_on.length === 0) return [];
  const jobs = await projectsOf(db, "jobs", spec.depends_on.filter((d) => d.job.startsWith("j_")).map((d) => d.job));
  const arrays = await projectsOf(db, "job_arrays", spec.depends_on.filter((d) => d.job.startsWith("a_")).map((d) => d.job));
  return spec.depends_on.map((d, i) => {
    const kind = d.job.startsWith("a_") ? "array" : "job";
    const found = (kind === "array" ? arrays : jobs).get(d.job);
    if (found?.project !== spec.project) throw refused(`depends_on.${i}.job`, `project ${spec.project} has no ${kind} ${d.job}`);
    return { parent: d.job, kind, condition: d.condition };
  });
}

async function resolveInputs(db: Db, spec: JobSpec, perTask: JobInput[][], edges: ResolvedWorkflow["edges"], templated: boolean): Promise<JobInput[][]> {
  const all = perTask.flat();
  const where = (t: number) => (templated ? ` (task ${t})` : "");
  // Datasets: by id, else by name.
  const refs = [...new Set(all.flatMap((i) => ("dataset" in i ? [i.dataset] : [])))];
  const byRef = await datasetRefs(db, spec.project, refs);
  // Artifacts: their jobs, and the files of those that completed.
  const producers = await projectsOf(db, "jobs", all.flatMap((i) => ("artifact" in i ? [i.artifact.job] : [])));
  const files = await artifactSources(db, all);
  const parents = new Set(edges.filter((e) => e.kind === "job" && e.condition === "completed").map((e) => e.parent));
  return perTask.map((inputs, t) =>
    inputs.map((input, i) => {
      if ("dataset" in input) {
        const id = byRef.get(input.dataset);
        if (!id) throw refused(`inputs.${i}.dataset`, `project ${spec.project} has no dataset ${input.dataset}${where(t)}`);
        return { dataset: id, path: input.path };
      }
      const producer = producers.get(input.artifact.job);
      if (producer?.project !== spec.project) throw refused(`inputs.${i}.artifact.job`, `project ${spec.project} has no job ${input.artifact.job}`);
      if (parents.has(input.artifact.job)) return input;
      if (producer.status !== "completed") {
        throw refused(`inputs.${i}.artifact.job`, `${input.artifact.job} has not completed (it is ${producer.status}): name it in depends_on with condition completed, so this job waits for its ${input.artifact.name}`);
      }
      if (!files.has(artifactKey(input.artifact.job, input.artifact.name))) throw refused(`inputs.${i}.artifact.name`, `${inputSource(input)} does not exist${where(t)}`);
      return input;
    }),
  );
}

/** The project (and, for jobs, status) of each of these jobs or arrays, by id; ids that do not exist are left out. */
async function projectsOf(db: Db, table: "jobs" | "job_arrays", ids: string[]): Promise<Map<string, { project: string; status: JobStatus | null }>> {
  if (ids.length === 0) return new Map();
  const status = table === "jobs" ? "status" : "NULL";
  const rows = await db.$client
    .prepare(`SELECT id, project, ${status} FROM ${table} WHERE id IN (SELECT value FROM json_each(?1))`)
    .bind(JSON.stringify([...new Set(ids)]))
    .raw<[string, string, JobStatus | null]>();
  return new Map(rows.map(([id, project, s]) => [id, { project, status: s }]));
}

/** Each dataset reference's id in the project: an id as it is, a name as the newest dataset of that name. */
async function datasetRefs(db: Db, project: string, refs: string[]): Promise<Map<string, string>> {
  if (refs.length === 0) return new Map();
  const rows = await db.$client
    .prepare(
      "SELECT value, (SELECT d.id FROM datasets d WHERE d.project = ?2 AND (d.id = r.value OR d.name = r.value) ORDER BY d.id = r.value DESC, d.created_at DESC LIMIT 1) FROM json_each(?1) AS r",
    )
    .bind(JSON.stringify(refs), project)
    .raw<[string, string | null]>();
  return new Map(rows.flatMap(([ref, id]) => (id ? [[ref, id]] : [])));
}

/** Inputs with `{index}` filled in for one task. */
export const taskInputs = (inputs: readonly JobInput[], index: number | null): JobInput[] =>
  inputs.map((i) =>
    "dataset" in i ? { dataset: expandIndex(i.dataset, index), path: expandIndex(i.path, index) } : { artifact: { job: i.artifact.job, name: expandIndex(i.artifact.name, index) }, path: expandIndex(i.path, index) },
  );
