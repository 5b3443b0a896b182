import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import type { DockerEngine } from "../docker/engine.ts";
import { REPO_LIMITS } from "../../../protocol/index.ts";
import type { Logger } from "../logger.ts";

/** An environment to build: the env repository at a resolved commit, and the Dockerfile in it. */
export interface EnvSource {
  url: string;
  commit: string;
  dockerfile: string;
  /** The protocol `envKey` of the environment as the job asked for it, reported as warm. */
  key: string;
}

/** Why an environment could not be had: the build failed or took too long. */
export class BuildError extends Error {}

/** Build lines kept for jobs that join a build in progress. */
const REPLAY_LINES = 20_000;

/** Labels on every environment image, so a restarted agent knows what it has. */
const ENV_LABEL = "gridx.env_key";

interface SharedBuild {
  lines: string[];
  listeners: Set<(line: string) => void>;
  done: Promise<void>;
}

/**
 * Environment images, tagged from a hash of the env repository, commit and Dockerfile path,
 * so an image that exists is reused as it is. Jobs that need one being built wait for that
 * build and see its output; Docker's layer cache makes a changed env commit cheap.
 */
export class EnvImages {
  private readonly builds = new Map<string, SharedBuild>();
  /** envKey → last use, for the warm report. */
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly docker: DockerEngine,
    private readonly opts: { buildTimeoutMs: number; log: Logger },
  ) {}

  static tagFor(env: Pick<EnvSource, "url" | "commit" | "dockerfile">): string {
    return `gridx-env:${createHash("sha256").update(`${env.url}\0${env.commit}\0${env.dockerfile}`).digest("hex").slice(0, 32)}`;
  }

  /**
   * The environment's image, built first if it does not exist. `context` gives the build
   * context (a tar of the env commit) when a build is needed; `line` receives the build's
   * output. A stopped job stops waiting; the build itself goes on for the jobs after it.
   */
  async ensure(env: EnvSource, context: (use: (tar: Readable) => Promise<void>) => Promise<void>, line: (text: string) => void, signal: AbortSignal): Promise<{ image: string; how: "reused" | "built" | "joined" }> {
    const image = EnvImages.tagFor(env);
    this.recent.set(env.key, Date.now());
    let build = this.builds.get(image);
    const how = build ? "joined" : "built";
    if (!build) {
      if (await this.exists(image)) return { image, how: "reused" };
      build = this.start(image, env, context);
    }
    const replay = [...build.lines];
    replay.forEach(line);
    build.listeners.add(line);
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new BuildError(`stopped while the environment was building (${String(signal.reason)})`));
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        build.done.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
      });
    } finally {
      build.listeners.delete(line);
    }
    return { image, how };
  }

  /** Keys of the environments this worker has, most recently used first. */
  async warmKeys(): Promise<string[]> {
    const labelled = await this.docker.listImages([ENV_LABEL]).catch(() => []);
    for (const img of labelled) {
      const key = img.Labels?.[ENV_LABEL];
      if (key && !this.recent.has(key)) this.recent.set(key, img.Created * 1000);
    }
    return [...this.recent].sort((a, b) => b[1] - a[1]).slice(0, REPO_LIMITS.warm_entries).map(([k]) => k);
  }

  private async exists(image: string): Promise<boolean> {
    return this.docker.inspectImage(image).then(
      () => true,
      () => false,
    );
  }

  private start(image: string, env: EnvSource, context: (use: (tar: Readable) => Promise<void>) => Promise<void>): SharedBuild {
    const build: SharedBuild = { lines: [], listeners: new Set(), done: Promise.resolve() };
    const emit = (text: string) => {
      if (build.lines.length < REPLAY_LINES) build.lines.push(text);
      for (const l of build.listeners) l(text);
    };
    build.done = (async () => {
      const started = Date.now();
      const timeout = AbortSignal.timeout(this.opts.buildTimeoutMs);
      emit(`building the environment ${env.url} @ ${env.commit.slice(0, 12)} (${env.dockerfile}) as ${image}`);
      let failure: string | null = null;
      try {
        await context(async (tar) => {
          const labels = { [ENV_LABEL]: env.key, "gridx.env_repo": env.url, "gridx.env_commit": env.commit };
          await this.docker.buildImage(tar, { tag: image, dockerfile: env.dockerfile, labels, signal: timeout }, (event) => {
            if (event.stream) for (const text of event.stream.replace(/\n$/, "").split("\n")) emit(text);
            if (event.error) {
              failure = event.errorDetail?.message ?? event.error;
              emit(failure);
            }
          });
        });
      } catch (err) {
        failure = timeout.aborted ? `the build took longer than ${Math.round(this.opts.buildTimeoutMs / 1000)}s` : err instanceof Error ? err.message : String(err);
      }
      if (failure || !(await this.exists(image))) {
        const why = failure ?? "the build produced no image";
        emit(`environment build failed: ${why}`);
        throw new BuildError(`the environment build failed: ${why}`);
      }
      emit(`environment built in ${((Date.now() - started) / 1000).toFixed(1)}s`);
      this.opts.log.info("environment built", { image, url: env.url, commit: env.commit, ms: Date.now() - started });
    })().finally(() => this.builds.delete(image));
    // Waiters attach their own handlers; this one only keeps a failure from going unhandled.
    build.done.catch(() => undefined);
    this.builds.set(image, build);
    return build;
  }
}
