import { existsSync } from "node:fs";
import { envKey, REPO_LIMITS, repoKey, type AttemptSandbox, type JobTask, type RepoCredentials, type ResolvedCommits, type WarmCache } from "../../../protocol/index.ts";
import { TaskError } from "../runner/runner.ts";
import { BuildError, EnvImages } from "./env-images.ts";
import { GitCache, RepoError, type Resolved } from "./git-cache.ts";

type RepoTask = Extract<JobTask, { kind: "repo" }>;

export interface RepoOutput {
  system(text: string): void;
  build(text: string): void;
}

const describe = (r: Resolved) => (r.fetchedObjects ? `fetched ${r.fetchedObjects} new object(s)` : "from the local cache");

/** Turns a repo job's five fields into a code folder and an environment image. */
export class RepoWorkspace {
  constructor(
    private readonly git: GitCache,
    private readonly images: EnvImages,
  ) {}

  /**
   * Resolves both commits (a missing one is the job's `input_error`), writes the code into
   * `codeDir`, and finds or builds the environment (a failed build is its `image_error`) on
   * the build network `sandbox` allows.
   */
  async prepare(task: RepoTask, credentials: RepoCredentials | undefined, sandbox: AttemptSandbox, codeDir: string, out: RepoOutput, stop: AbortSignal): Promise<{ image: string; resolved: ResolvedCommits }> {
    const r = task.repo;
    const [code, env] = await this.step("input_error", async () => {
      const c = await this.git.resolve(r.code_repo_url, r.code_commit_id, credentials?.code, stop);
      out.system(`[gridx: code ${r.code_repo_url} ${r.code_commit_id} is ${c.commit} (${describe(c)})]`);
      const e = await this.git.resolve(r.env_repo_url, r.env_commit_id, credentials?.env, stop);
      out.system(`[gridx: environment ${r.env_repo_url} ${r.env_commit_id} is ${e.commit} (${describe(e)})]`);
      await this.git.export(r.code_repo_url, c.commit, codeDir);
      return [c, e] as const;
    });
    const { image, how } = await this.step("image_error", () =>
      this.images.ensure(
        { url: r.env_repo_url, commit: env.commit, dockerfile: r.dockerfile_path, key: envKey(r) },
        { dockerfile: (maxBytes) => this.git.archivedFile(r.env_repo_url, env.commit, r.dockerfile_path, maxBytes), context: (use) => this.git.withArchive(r.env_repo_url, env.commit, use) },
        out.build,
        stop,
        // The runner removes a job's folder only once its container is gone: until then the image is the job's.
        { network: sandbox.build_network, egressAllow: sandbox.egress_allow, held: () => existsSync(codeDir) },
      ),
    );
    const said = { built: "built", joined: "built by a build another job started; this job waited for it", reused: "reused, no build" };
    out.system(`[gridx: environment image ${image} ${said[how]}]`);
    return { image, resolved: { code_commit_id: code.commit, env_commit_id: env.commit, image } };
  }

  /** What this worker has warm, for cache-aware scheduling. */
  async warm(): Promise<WarmCache> {
    const [envs, urls] = await Promise.all([this.images.warmKeys(), this.git.urls()]);
    return { envs, repos: urls.slice(0, REPO_LIMITS.warm_entries).map(repoKey) };
  }

  private async step<T>(reason: "input_error" | "image_error", fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof RepoError || err instanceof BuildError) throw new TaskError(reason, err.message);
      throw err;
    }
  }
}
