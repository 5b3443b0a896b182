import { copyFile, link, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { inputSource, type ResolvedCommits } from "../../../protocol/index.ts";
import type { DockerEngine } from "../docker/engine.ts";
import type { RepoWorkspace } from "../repos/workspace.ts";
import type { InputCache } from "../transfer/input-cache.ts";
import type { CommandImages } from "./command-image.ts";
import type { JobFolder } from "./job-folder.ts";
import { handlerFor, type Prepared, type RunnerImages } from "./kinds.ts";
import { errorText, failedStep, prepareFailure, type Verdict } from "./outcome.ts";
import type { RunHooks, RunRequest, StopReason } from "./runner.ts";

export interface PrepareDeps {
  docker: DockerEngine;
  images: RunnerImages;
  /** Command jobs' images: allowed on this machine, pulled, pinned. */
  commandImages: CommandImages;
  repos: RepoWorkspace | null;
  /** Where inputs come from; without it a job with inputs fails. */
  cache: InputCache | null;
}

/** A job ready to start, or why it cannot; either way what a repo job resolved so far. */
export type PrepareResult = { ok: true; job: Prepared } | { ok: false; verdict: Verdict; resolved?: ResolvedCommits };

/**
 * Gets a job ready in its folder: the kind's files and image (a command job's allowed here
 * and pulled if need be), the image on this machine, the inputs in place. `env` is the
 * job's environment for a prestarted sandbox (its image is there: it runs), null for a
 * container made with it.
 */
export async function prepareJob(deps: PrepareDeps, req: RunRequest, folder: JobFolder, env: Record<string, string> | null, hooks: RunHooks, stop: AbortSignal): Promise<PrepareResult> {
  const unopened = Object.entries(req.spec.secrets).find(([variable]) => req.secretEnv?.[variable] === undefined);
  if (unopened) {
    const [variable, name] = unopened;
    const message = `secret ${name} (for ${variable}) could not be had: it was deleted from project ${req.spec.project} since the job was submitted, or the control plane could not open it`;
    return { ok: false, verdict: { exit_code: null, failure_reason: "input_error", message } };
  }
  let job: Prepared;
  try {
    job = await handlerFor(req.spec.task).prepare(req.spec.task, {
      jobId: req.jobId,
      images: deps.images,
      inputDir: folder.input,
      codeDir: folder.code,
      env,
      repos: deps.repos,
      commandImages: deps.commandImages,
      credentials: req.credentials,
      sandbox: req.sandbox,
      system: hooks.system,
      build: (text) => hooks.output("build", Buffer.from(text + "\n")),
      stop,
    });
  } catch (err) {
    return { ok: false, verdict: prepareFailure(err, stop.aborted ? (stop.reason as StopReason) : null) };
  }
  const failed = (verdict: Verdict): PrepareResult => ({ ok: false, verdict, resolved: job.resolved });
  if (!env) {
    try {
      await deps.docker.inspectImage(job.image);
    } catch (err) {
      return failed(failedStep(err, "image_error", `image ${job.image} is not on this worker`));
    }
  }
  try {
    await fetchInputs(deps.cache, req, folder.input, hooks);
  } catch (err) {
    return failed({ exit_code: null, failure_reason: "input_error", message: errorText(err) });
  }
  return { ok: true, job };
}

/** Downloads (or finds cached) each input and links it into the job's input folder. */
async function fetchInputs(cache: InputCache | null, req: RunRequest, inputDir: string, hooks: RunHooks): Promise<void> {
  if (req.inputs.length !== req.spec.inputs.length) {
    const missing = req.spec.inputs.filter((i) => !req.inputs.some((d) => d.path === i.path)).map(inputSource);
    throw new Error(`input ${missing.join(", ")} does not exist`);
  }
  if (req.inputs.length && !cache) throw new Error("this agent cannot fetch inputs (no transfer settings)");
  for (const input of req.inputs) {
    const { path, hit } = await cache!.get(input);
    const target = join(inputDir, input.path);
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    // A hard link costs nothing and survives the cache evicting its own name.
    await link(path, target).catch(() => copyFile(path, target));
    // The download's own `dataset` is only a label (`artifact:j_…/name` for an artifact); the spec says what it is.
    const asked = req.spec.inputs.find((i) => i.path === input.path);
    hooks.system(`[gridx: input ${input.path} (${asked ? inputSource(asked) : `dataset ${input.dataset}`}, ${input.size} bytes) ${hit ? "from the local cache" : "downloaded"}]`);
  }
}
