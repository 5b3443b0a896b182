import { inputSource, type CoordinatorToAgent, type InputDownload, type JobInput, type JobSpec, type PoolSandbox, type RepoCredentials } from "../../../protocol/index.ts";
import { artifactKey, artifactSources } from "../db/artifacts.ts";
import type { Db } from "../db/client.ts";
import { failQueued } from "../db/attempts.ts";
import { datasetsByIds } from "../db/datasets.ts";
import { secretsByNames } from "../db/secrets.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { SecretVault } from "../secrets/vault.ts";
import type { Settings } from "../settings.ts";
import { ObjectStore } from "../storage/object-store.ts";
import { attemptSandbox, sandboxRefusal } from "../sandbox-policy.ts";

/** What building an assignment needs: the pool's D1, its bindings, settings and sandbox policy (read once per round). */
export interface AssignmentContext {
  db: Db;
  env: Bindings;
  settings: Settings;
  pool: string | null;
  sandbox: PoolSandbox;
}

/** An assignment, with presigned downloads of the job's inputs issued for this attempt. */
export async function buildAssignment(c: AssignmentContext, jobId: string, attempt: number, spec: JobSpec, gpuIndices: number[]): Promise<CoordinatorToAgent> {
  const inputs: InputDownload[] = [];
  if (spec.inputs.length) {
    const store = new ObjectStore(c.env.BUCKET, c.settings);
    const [datasets, artifacts] = await Promise.all([datasetsByIds(c.db, datasetIds(spec.inputs)), artifactSources(c.db, spec.inputs)]);
    const rows = new Map(datasets.map((d) => [d.id, d]));
    for (const input of spec.inputs) {
      // Deleted since dispatch (or never the project's): the agent reports the input missing.
      const found =
        "dataset" in input
          ? rows.get(input.dataset)
          : artifacts.get(artifactKey(input.artifact.job, input.artifact.name));
      if (!found || found.project !== spec.project) continue;
      // The agent's `dataset` field labels what it fetches; an artifact's is `artifact:<job>/<name>`.
      const label = "dataset" in input ? input.dataset : `artifact:${artifactKey(input.artifact.job, input.artifact.name)}`;
      inputs.push({ dataset: label, path: input.path, url: (await store.presign("GET", found.key)).url, size: found.size, sha256: found.sha256 });
    }
  }
  // Every secret comes from the job's own project, whatever its repo names: submit refused any other.
  const repo = spec.task.kind === "repo" ? spec.task.repo : undefined;
  const registry = spec.task.kind === "command" ? spec.task.command.registry_credentials : undefined;
  const wanted = [repo?.code_credentials, repo?.env_credentials, registry, ...Object.values(spec.secrets)].filter((n) => n !== undefined);
  const opened = await openSecrets(c, spec.project, wanted);
  const credentials: RepoCredentials | undefined =
    repo && (repo.code_credentials || repo.env_credentials)
      ? { code: repo.code_credentials && opened.get(repo.code_credentials), env: repo.env_credentials && opened.get(repo.env_credentials) }
      : registry
        ? { registry: opened.get(registry) }
        : undefined;
  const secretEnv = Object.fromEntries(Object.entries(spec.secrets).flatMap(([env, name]) => (opened.has(name) ? [[env, opened.get(name)!]] : [])));
  const sandbox = attemptSandbox(spec, c.sandbox);
  return { type: "assign_job", payload: { job_id: jobId, attempt, spec, gpu_indices: gpuIndices, inputs, credentials, secret_env: secretEnv, sandbox, log_max_bytes: c.settings.LOG_MAX_BYTES } };
}

/**
 * Decrypts some of a project's secrets, by name, for one assignment, in one read. A secret
 * deleted since submission (or a vault that cannot open it) is left out: the agent then fails
 * the job and says which is missing, rather than the queue stalling.
 */
async function openSecrets(c: AssignmentContext, project: string, names: string[]): Promise<Map<string, string>> {
  const opened = new Map<string, string>();
  if (names.length === 0) return opened;
  try {
    const vault = await SecretVault.fromKey(c.env.SECRETS_KEY);
    for (const row of await secretsByNames(c.db, project, [...new Set(names)])) opened.set(row.name, await vault.open(project, row.name, row.sealed));
  } catch (err) {
    // Never the secret itself: only why it could not be opened.
    console.error(`coordinator(${c.pool}): project ${project} secrets could not be opened`, errorText(err));
  }
  return opened;
}

/**
 * Fails, instead of scheduling, queued jobs that could never start, so the user learns why at
 * once: datasets that do not exist or are still uploading, or a runtime, network or image the
 * pool's sandbox policy no longer admits (it was changed since the job's submit).
 */
export async function withoutUnstartable<J extends { id: string; spec: JobSpec }>(c: AssignmentContext, jobs: J[]): Promise<J[]> {
  const admitted: J[] = [];
  for (const job of jobs) {
    const refusal = sandboxRefusal(job.spec, c.sandbox, c.settings.ALLOWED_IMAGES);
    if (refusal) await failQueued(c.db, job.id, "input_error", `pool ${job.spec.pool}'s sandbox policy changed since submit: ${refusal.field}: ${refusal.message}`, Date.now());
    else admitted.push(job);
  }
  return withReadyInputs(c, admitted);
}

const datasetIds = (inputs: readonly JobInput[]) => inputs.flatMap((i) => ("dataset" in i ? [i.dataset] : []));

async function withReadyInputs<J extends { id: string; spec: JobSpec }>(c: AssignmentContext, jobs: J[]): Promise<J[]> {
  const all = jobs.flatMap((j) => j.spec.inputs);
  if (all.length === 0) return jobs;
  const wanted = [...new Set(datasetIds(all))];
  const [datasets, artifacts] = await Promise.all([wanted.length ? datasetsByIds(c.db, wanted) : [], artifactSources(c.db, all)]);
  const ready = new Map(datasets.map((d) => [d.id, d.status]));
  // Without storage no input can be fetched; failing those jobs keeps them from wedging the queue.
  const storage = c.settings.S3_ENDPOINT && c.settings.S3_ACCESS_KEY_ID && c.settings.S3_SECRET_ACCESS_KEY;
  const kept: J[] = [];
  for (const job of jobs) {
    const problem = job.spec.inputs
      .map((i) =>
        !storage
          ? "cannot be fetched: object storage is not configured on this control plane"
          : !("dataset" in i)
            ? artifacts.has(artifactKey(i.artifact.job, i.artifact.name))
              ? null
              : `${inputSource(i)} does not exist: its job did not leave it in /work/output`
            : !ready.has(i.dataset)
              ? `dataset ${i.dataset} does not exist`
              : ready.get(i.dataset) !== "ready"
                ? `dataset ${i.dataset} is still uploading`
                : null,
      )
      .find(Boolean);
    if (problem) await failQueued(c.db, job.id, "input_error", `input ${problem}`, Date.now());
    else kept.push(job);
  }
  return kept;
}
