import { lstat } from "node:fs/promises";
import type { HttpOptions } from "../transfer/http.ts";
import { listFiles, uploadFiles, type ArtifactApi, type OutputFile } from "../transfer/uploader.ts";
import { JOB_LOG_ARTIFACT } from "./job-log.ts";
import { judgeOutputs, OUTPUT_LIMITS } from "./output-rules.ts";
import { errorText } from "./outcome.ts";
import type { RunHooks, RunRequest } from "./runner.ts";

/** Where a job's outputs go; without it they stay on this machine. */
export interface Uploads {
  artifacts(jobId: string, attempt: number): ArtifactApi;
  http: HttpOptions;
}

export interface Collected {
  /** Why the output broke its limits, or null. */
  over: string | null;
  /** Why some of it (files or the log) could not be uploaded, or null. */
  uploadError: string | null;
}

/**
 * Judges what the job left in /work/output (output-rules.ts) and uploads the files kept,
 * then the job log, as the attempt's artifacts. The log goes up on its own, whatever became
 * of the files, so a job whose files were refused or failed to upload still has its log.
 */
export async function collectOutputs(uploads: Uploads | null, req: RunRequest, outputDir: string, logPath: string, capBytes: number, hooks: RunHooks): Promise<Collected> {
  const { files, complete } = await listFiles(outputDir, OUTPUT_LIMITS.maxEntries);
  const judged = judgeOutputs(files, complete, capBytes);
  if (judged.note) hooks.system(judged.note);
  if (!uploads) return { over: judged.over, uploadError: null };
  const api = uploads.artifacts(req.jobId, req.attempt);
  const errors: string[] = [];
  const upload = async (what: string, chosen: OutputFile[]) => {
    try {
      return (await uploadFiles(chosen, api, uploads.http)).length;
    } catch (err) {
      errors.push(`${what}: ${errorText(err)}`);
      return 0;
    }
  };
  const kept = await upload("the output files", judged.keep);
  const logSize = (await lstat(logPath).catch(() => null))?.size ?? 0;
  await upload("the job log", [{ name: JOB_LOG_ARTIFACT, path: logPath, size: logSize }]);
  if (errors.length) return { over: judged.over, uploadError: errors.join("; ") };
  hooks.system(`[gridx: uploaded ${kept} output file(s) and the job log]`);
  return { over: judged.over, uploadError: null };
}
