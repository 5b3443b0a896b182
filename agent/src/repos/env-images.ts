import { createHash } from "node:crypto";
import { lookup } from "node:dns/promises";
import type { Readable } from "node:stream";
import { DockerError, type DockerEngine } from "../docker/engine.ts";
import type { ImageInspect, ImageSummary } from "../docker/types.ts";
import { REPO_LIMITS, type BuildNetwork } from "../../../protocol/index.ts";
import type { Logger } from "../logger.ts";
import { ENV_IMAGE_REPOSITORY, parseImage, PullProgress, type LoginPulls } from "../runner/command-image.ts";
import { buildConfinement, describeLimits, explainStepFailure, oversize, type BuildCgroup, type BuildLimits } from "./build-limits.ts";
import { addressProblem, checkDockerfile, checkTriggers, DOCKERFILE_MAX_BYTES, hostOnly, registryHost, type ImageUse } from "./dockerfile-check.ts";
import { chooseEvictions, LastUse } from "./image-gc.ts";

/** An environment to build: the env repository at a resolved commit, and the Dockerfile in it. */
export interface EnvSource {
  url: string;
  commit: string;
  dockerfile: string;
  /** The protocol `envKey` of the environment as the job asked for it, reported as warm. */
  key: string;
}

/** Why an environment could not be had: its Dockerfile was refused, the build failed, took too long or made too big an image. */
export class BuildError extends Error {}

/** Where a build's Dockerfile and context come from: the env commit, read while its repository is held (GitCache). */
export interface BuildSource {
  /** The Dockerfile's bytes as the context holds them; rejects when it is no file there or larger than `maxBytes`. */
  dockerfile(maxBytes: number): Promise<Buffer>;
  /** The build context, a tar of the env commit, handed to `use`. */
  context(use: (tar: Readable) => Promise<void>): Promise<void>;
}

/** How long a registry's name may take to resolve before a build; one that does not resolve is left to the pull to fail. */
const REGISTRY_LOOKUP_TIMEOUT_MS = 10_000;

/** An inspected base image, with the ONBUILD triggers the builder runs in a stage built on it. */
type BaseImage = ImageInspect & { Config?: { OnBuild?: string[] | null } };

/**
 * Build lines kept for jobs that join a build in progress: a joiner sees at most this many of
 * the lines before it came (and every one after), so a build's memory here stays bounded.
 */
export const REPLAY_LINES = 20_000;

/** Labels on every environment image, so a restarted agent knows what it has. */
const ENV_LABEL = "gridx.env_key";
/** The agent that built it, whose budget it counts against. */
const BUILDER_LABEL = "gridx.env_builder";
const TAG_REPO = ENV_IMAGE_REPOSITORY;

/** The filtered egress network a build with this allowlist may use, or null where the agent has none (see sandbox-net/). */
export type EgressNetworkFor = (allow: string[]) => Promise<string | null>;

export interface EnvImagesOptions {
  /** The agent's name: its builds carry it, and only those count against its budget. */
  agentName: string;
  limits: BuildLimits;
  /** The agent's build cgroup, or why it has none. */
  cgroup: BuildCgroup;
  /** The disk budget of the environment images this agent built; least recently used ones go past it. */
  cacheBytes: number;
  /** The file keeping each image's last use across restarts. */
  usesFile: string;
  /** Absent: builds never get a network. */
  egressNetwork?: EgressNetworkFor;
  /** The repositories command jobs pulled with a login: a build may not use their images, since it gives no login. */
  loginPulls: LoginPulls;
  /** Ranges refused for registries on top of the blocked ones (`--egress-deny`); default none. */
  deny?: string[];
  log: Logger;
}

/** What one job's build may reach (from its attempt's sandbox), and how long the job holds the image. */
export interface EnvUse {
  network: BuildNetwork;
  egressAllow: string[];
  /** True until the job no longer needs the image; garbage collection leaves it alone until then. */
  held: () => boolean;
}

interface SharedBuild {
  lines: string[];
  listeners: Set<(line: string) => void>;
  done: Promise<void>;
}

/** Docker's own build lines, which say nothing about why a step failed. */
const DOCKER_LINE = /^(Step \d+\/\d+ : | ---> |Removing intermediate container |Successfully (built|tagged) )/;
const STEP_IMAGE = /^ ---> ([0-9a-f]{12,64})$/;
/** A failed step's lines kept to find its reason in. */
const TAIL_LINES = 20;
// oxlint-disable-next-line no-control-regex -- the ANSI colour codes Docker puts around a step's stderr
const ANSI = /\u001b\[[0-9;]*m/g;

/**
 * Environment images, tagged from a hash of the env repository, commit and Dockerfile path,
 * so an image that exists is reused as it is. Jobs that need one being built wait for that
 * build and see its output; Docker's layer cache makes a changed env commit cheap. Builds run
 * confined (see docs/security.md, "Confined builds"), and the images are collected least
 * recently used first past `cacheBytes`.
 */
export class EnvImages {
  private readonly builds = new Map<string, SharedBuild>();
  /** Images handed to jobs, with each job's `held`. */
  private readonly holds = new Map<string, Set<() => boolean>>();
  private readonly uses: LastUse;
  /** The collection under way: an existence check waits for it, so it never finds an image about to go. */
  private collecting: Promise<void> = Promise.resolve();

  constructor(
    private readonly docker: DockerEngine,
    private readonly opts: EnvImagesOptions,
  ) {
    this.uses = new LastUse(opts.usesFile, opts.log);
  }

  static tagFor(env: Pick<EnvSource, "url" | "commit" | "dockerfile">): string {
    return `${TAG_REPO}:${createHash("sha256").update(`${env.url}\0${env.commit}\0${env.dockerfile}`).digest("hex").slice(0, 32)}`;
  }

  /**
   * The environment's image, built first if it does not exist. `source` gives the Dockerfile,
   * checked first (also for an image that exists: the login record may have grown since), and
   * the build context when a build is needed; `line` receives the build's output. A stopped job
   * stops waiting; the build itself goes on for the jobs after it.
   */
  async ensure(env: EnvSource, source: BuildSource, line: (text: string) => void, signal: AbortSignal, use: EnvUse): Promise<{ image: string; how: "reused" | "built" | "joined" }> {
    const image = EnvImages.tagFor(env);
    this.hold(image, use.held);
    let build = this.builds.get(image);
    let how: "built" | "joined" = build ? "joined" : "built";
    if (!build) {
      await this.collecting;
      const images = await this.vet(env, source);
      const exists = await this.exists(image);
      // Another job may have started the same build while this one was vetting: join it, never build twice.
      build = this.builds.get(image);
      if (build) how = "joined";
      else if (exists) {
        await this.uses.touch(image);
        return { image, how: "reused" };
      } else build = this.start(image, env, source, images, use);
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
    const ranked = await Promise.all(labelled.map(async (img) => ({ key: img.Labels?.[ENV_LABEL], at: await this.lastUse(img) })));
    const keys = ranked.sort((a, b) => b.at - a.at).flatMap((r) => (r.key ? [r.key] : []));
    return [...new Set(keys)].slice(0, REPO_LIMITS.warm_entries);
  }

  /**
   * Removes the environment images this agent built, least recently used first, until they
   * fit the budget (another agent on this engine keeps its own); never
   * one being built, held by a job, or used by a container (Docker refuses those too). Returns
   * what it removed. One collection at a time.
   */
  collect(): Promise<string[]> {
    const run = this.collecting.then(() => this.collectNow());
    this.collecting = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async collectNow(): Promise<string[]> {
    const [images, containers] = await Promise.all([this.docker.listImages([ENV_LABEL, `${BUILDER_LABEL}=${this.opts.agentName}`]), this.docker.listContainers([])]);
    const used = new Set(containers.map((c) => c.ImageID));
    const candidates = await Promise.all(
      images.map(async (img) => {
        const ref = refOf(img);
        return { ref, bytes: img.Size, lastUse: await this.lastUse(img), inUse: used.has(img.Id) || this.builds.has(ref) || this.isHeld(ref) };
      }),
    );
    const removed: string[] = [];
    for (const ref of chooseEvictions(candidates, this.opts.cacheBytes)) {
      // A job may have taken it since the list was made.
      if (this.isHeld(ref)) continue;
      try {
        await this.docker.removeImage(ref);
        removed.push(ref);
      } catch (err) {
        // 409: a container took it up since the list was made; 404: someone else removed it.
        if (!(err instanceof DockerError && (err.status === 409 || err.status === 404))) throw err;
        if (err.status === 409) this.opts.log.info("environment image in use; kept", { image: ref });
      }
    }
    if (removed.length) this.opts.log.info("environment images removed to fit the cache budget", { images: removed, budget_bytes: this.opts.cacheBytes });
    await this.uses.keepOnly(new Set(candidates.map((c) => c.ref).filter((r) => !removed.includes(r))));
    return removed;
  }

  private async lastUse(img: ImageSummary): Promise<number> {
    return (await this.uses.get(refOf(img))) ?? img.Created * 1000;
  }

  private hold(image: string, held: () => boolean): void {
    const holders = this.holds.get(image) ?? new Set();
    holders.add(held);
    this.holds.set(image, holders);
  }

  /** Whether a job still holds `image`; holds of jobs that ended are dropped on the way. */
  private isHeld(image: string): boolean {
    const holders = this.holds.get(image);
    if (!holders) return false;
    for (const held of holders) if (!held()) holders.delete(held);
    if (!holders.size) this.holds.delete(image);
    return holders.size > 0;
  }

  private async exists(image: string): Promise<boolean> {
    return this.docker.inspectImage(image).then(
      () => true,
      () => false,
    );
  }

  /** The network the build runs on, and the words that say so in its output. */
  private async networkFor(use: EnvUse): Promise<{ mode: string; said: string }> {
    if (use.network === "none") return { mode: "none", said: "none (the pool's build_network is none)" };
    if (!this.opts.egressNetwork) return { mode: "none", said: "none (this agent has no filtered egress network)" };
    const name = await this.opts.egressNetwork(use.egressAllow).catch((err: unknown) => {
      this.opts.log.warn("no egress network for a build; it builds without network", { err });
      return null;
    });
    if (!name) return { mode: "none", said: "none (this agent's filtered egress network is not available)" };
    return { mode: name, said: `egress through ${name}${use.egressAllow.length ? `, only to ${use.egressAllow.join(", ")}` : ""}` };
  }

  /**
   * The images the Dockerfile uses; a BuildError when it asks the engine for what the agent
   * refuses (dockerfile-check.ts) or names a repository pulled here with a login.
   */
  private async vet(env: EnvSource, source: BuildSource): Promise<ImageUse[]> {
    const checked = checkDockerfile(await source.dockerfile(DOCKERFILE_MAX_BYTES));
    const refusals = [...checked.refusals];
    for (const use of checked.images) {
      if (await this.opts.loginPulls.has(parseImage(use.ref).repository)) {
        refusals.push(
          `line ${use.line}: ${use.how} ${use.ref}: its repository was pulled on this worker with a registry login, and a build gives none, so the copy here may be another project's (build on a public image)`,
        );
      }
    }
    if (refusals.length) throw new BuildError(`the environment's ${env.dockerfile} is refused: ${refusals.slice(0, 3).join("; ")}${refusals.length > 3 ? ` (and ${refusals.length - 3} more)` : ""}`);
    return checked.images;
  }

  /** Refuses a registry named by DNS whose name resolves to an address a build may not reach: the engine connects from the host's network. */
  private async checkRegistries(images: ImageUse[]): Promise<void> {
    for (const use of images) {
      const host = registryHost(use.ref);
      if (!host) continue;
      const problem = (await resolveAll(hostOnly(host))).map((a) => addressProblem(a, this.opts.deny ?? [])).find((p) => p !== null);
      if (problem) throw new BuildError(`line ${use.line}: ${use.how} ${use.ref}: its registry ${hostOnly(host)} resolves to ${problem}, which a build may not reach`);
    }
  }

  /**
   * Pulls the base images not on this machine (without a login, as the builder would), so that
   * their ONBUILD triggers, which the builder runs itself, are read before the build: one
   * that fetches a URL is refused (dockerfile-check.ts, checkTriggers).
   */
  private async checkBases(images: ImageUse[], emit: (text: string) => void, signal: AbortSignal): Promise<void> {
    for (const ref of new Set(images.filter((u) => u.how === "FROM").map((u) => u.ref))) {
      let base = await this.inspectBase(ref);
      if (!base) {
        emit(`[gridx: pulling the base image ${ref} without a login, to read its ONBUILD instructions before the build]`);
        await this.pullBase(ref, emit, signal);
        base = await this.inspectBase(ref);
        if (!base) throw new BuildError(`the base image ${ref} was pulled but is not on this worker: it was removed meanwhile`);
      }
      const refused = checkTriggers(ref, base.Config?.OnBuild ?? []);
      if (refused.length) throw new BuildError(refused.join("; "));
    }
  }

  private async inspectBase(ref: string): Promise<BaseImage | null> {
    try {
      return (await this.docker.inspectImage(ref)) as BaseImage;
    } catch (err) {
      if (err instanceof DockerError && err.status === 404) return null;
      throw err;
    }
  }

  private async pullBase(ref: string, emit: (text: string) => void, signal: AbortSignal): Promise<void> {
    const name = parseImage(ref);
    const progress = new PullProgress();
    let failure: string | null = null;
    try {
      await this.docker.pullImage(name.repository, { tag: name.tag, timeoutMs: this.opts.limits.timeoutMs, signal }, (event) => {
        if (event.error) failure = event.errorDetail?.message ?? event.error;
        const line = progress.line(event);
        if (line) emit(`${ref}: ${line}`);
      });
    } catch (err) {
      if (!(err instanceof DockerError)) throw err;
      failure = err.message;
    }
    if (failure !== null) throw new BuildError(`could not pull the base image ${ref} (a build gives no registry login): ${failure}`);
  }

  private start(image: string, env: EnvSource, source: BuildSource, images: ImageUse[], use: EnvUse): SharedBuild {
    const { limits, cgroup } = this.opts;
    const build: SharedBuild = { lines: [], listeners: new Set(), done: Promise.resolve() };
    const emit = (text: string) => {
      if (build.lines.length < REPLAY_LINES) build.lines.push(text);
      for (const l of build.listeners) l(text);
    };
    build.done = (async () => {
      const started = Date.now();
      emit(`building the environment ${env.url} @ ${env.commit.slice(0, 12)} (${env.dockerfile}) as ${image}`);
      emit(describeLimits(limits, cgroup));
      const network = await this.networkFor(use);
      emit(`[gridx: build network: ${network.said}]`);
      const timeout = AbortSignal.timeout(limits.timeoutMs);
      let failure: string | null = null;
      // The current step's last lines, for the failure's reason.
      let tail: string[] = [];
      // The last step's image: what a failed build leaves behind, untagged.
      let stepImage: string | null = null;
      try {
        await this.checkRegistries(images);
        await this.checkBases(images, emit, timeout);
        await source.context(async (tar) => {
          const labels = { [ENV_LABEL]: env.key, [BUILDER_LABEL]: this.opts.agentName, "gridx.env_repo": env.url, "gridx.env_commit": env.commit };
          await this.docker.buildImage(tar, { tag: image, dockerfile: env.dockerfile, labels, signal: timeout, confine: buildConfinement(limits, network.mode, cgroup) }, (event) => {
            if (event.stream) {
              for (const text of event.stream.replace(/\n$/, "").split("\n")) {
                emit(text);
                const plain = text.replace(ANSI, "");
                stepImage = STEP_IMAGE.exec(plain)?.[1] ?? stepImage;
                if (plain.startsWith("Step ")) tail = [];
                else if (plain.trim() && !DOCKER_LINE.test(plain)) tail = [...tail.slice(1 - TAIL_LINES), plain];
              }
            }
            if (event.error) {
              failure = explainStepFailure({ error: event.errorDetail?.message ?? event.error, code: event.errorDetail?.code, tail }, limits, cgroup);
              emit(failure);
            }
          });
        });
      } catch (err) {
        failure = timeout.aborted ? `the build ran past this agent's limit of ${Math.round(limits.timeoutMs / 1000)} s (--build-timeout)` : err instanceof Error ? err.message : String(err);
      }
      if (!failure) failure = await this.checkSize(image);
      if (failure) {
        if (stepImage) await this.removeUntagged(stepImage);
        emit(`environment build failed: ${failure}`);
        throw new BuildError(`the environment build failed: ${failure}`);
      }
      await this.uses.touch(image);
      emit(`environment built in ${((Date.now() - started) / 1000).toFixed(1)}s`);
      this.opts.log.info("environment built", { image, url: env.url, commit: env.commit, ms: Date.now() - started });
    })().finally(() => {
      this.builds.delete(image);
      // The cache grew: bring it back under its budget, without holding up the jobs that waited.
      this.collect().catch((err: unknown) => this.opts.log.warn("environment image collection failed", { err }));
    });
    // Waiters attach their own handlers; this one only keeps a failure from going unhandled.
    build.done.catch(() => undefined);
    this.builds.set(image, build);
    return build;
  }

  /** Why the built image may not stay (it is removed then), or null; a missing image is a failure too. */
  private async checkSize(image: string): Promise<string | null> {
    const built = await this.docker.inspectImage(image).catch(() => null);
    if (!built) return "the build produced no image";
    const over = oversize(built.Size, this.opts.limits);
    if (over) await this.docker.removeImage(image).catch((err: unknown) => this.opts.log.warn("could not remove an oversized environment image", { image, err }));
    return over;
  }

  /** Removes a failed build's last step image, and so the untagged steps before it, unless it is named or other images build on it. */
  private async removeUntagged(id: string): Promise<void> {
    const img = await this.docker.inspectImage(id).catch(() => null);
    if (!img || img.RepoTags?.length) return;
    await this.docker.removeImage(id).catch(() => undefined);
  }
}

/** Every address `host` resolves to now (IPv4 and IPv6, /etc/hosts first), as the engine's resolver would find them; none when it does not resolve in time. */
async function resolveAll(host: string): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string[]>((r) => (timer = setTimeout(() => r([]), REGISTRY_LOOKUP_TIMEOUT_MS)));
  try {
    return await Promise.race([lookup(host, { all: true }).then((found) => found.map((a) => a.address), () => []), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** What to remove an environment image by: its gridx-env tag, else (untagged) its id. */
function refOf(img: ImageSummary): string {
  return img.RepoTags?.find((t) => t.startsWith(`${TAG_REPO}:`)) ?? img.Id;
}
