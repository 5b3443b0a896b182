import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { imageMatches, type ResolvedCommits } from "../../../protocol/index.ts";
import { DockerError, PullTimeoutError, type DockerEngine, type RegistryAuth } from "../docker/engine.ts";
import type { ImageInspect, PullEvent } from "../docker/types.ts";
import { errorText } from "./outcome.ts";
import { TaskError } from "./runner.ts";

/** How long one pull may take, unless the agent is told otherwise (`--pull-timeout`). */
export const DEFAULT_PULL_TIMEOUT_S = 900;

/** A layer's download or extraction is logged each time it passes another this many percent. */
export const PULL_PROGRESS_STEP_PERCENT = 25;

/** An image reference taken apart as a pull needs it. */
export interface ImageName {
  /** The repository, as the job wrote it (`127.0.0.1:5000/acme/tool`, `python`). */
  repository: string;
  /** A tag, or a `sha256:` digest; `latest` when the reference names neither. */
  tag: string;
  /** Whether `tag` is a digest: the reference is pinned already. */
  digest: boolean;
  /** The registry's host, as a login names it; Docker Hub's for a name without one. */
  registry: string;
}

const DOCKER_HUB = "docker.io";

/**
 * Takes an image reference apart as Docker does: a first path component with a `.` or a `:`
 * (or `localhost`) is the registry, a `:` after the last `/` starts the tag, `@` the digest.
 *
 * @example
 * parseImage("127.0.0.1:5000/acme/tool:1"); // { repository: "127.0.0.1:5000/acme/tool", tag: "1", digest: false, registry: "127.0.0.1:5000" }
 */
export function parseImage(image: string): ImageName {
  const at = image.indexOf("@");
  let repository = image;
  let tag = "latest";
  const named = at === -1 ? image : image.slice(0, at);
  // `name:tag@sha256:…` is the digest's: Docker ignores the tag, so the repository must not keep it.
  const colon = named.lastIndexOf(":");
  if (colon > named.lastIndexOf("/")) {
    repository = named.slice(0, colon);
    tag = named.slice(colon + 1);
  } else repository = named;
  if (at !== -1) tag = image.slice(at + 1);
  const slash = repository.indexOf("/");
  const first = slash === -1 ? "" : repository.slice(0, slash);
  const registry = first && (first.includes(".") || first.includes(":") || first === "localhost") ? first : DOCKER_HUB;
  return { repository, tag, digest: at !== -1, registry };
}

/** A repository as Docker names it in `RepoDigests`: Docker Hub's host and `library/` left out. */
export function familiarName(repository: string): string {
  const short = repository.replace(/^(docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, "");
  return short.startsWith("library/") && short.split("/").length === 2 ? short.slice("library/".length) : short;
}

/** The repository of the environment images this agent builds (env-images.ts): never a command job's image, nor a build's base. */
export const ENV_IMAGE_REPOSITORY = "gridx-env";

/**
 * Why `image` names no repository a job may ask for, or null. An image id (`sha256:…`, or bare
 * hex that Docker also takes as an id prefix) finds any image on this machine, a private
 * build's or another project's pull among them; `gridx-env` images hold repo jobs' private
 * environments.
 */
export function notARepository(image: string): string | null {
  if (/^sha256:/i.test(image) || /^[0-9a-f]+$/i.test(image)) return "names an image by its id; name its repository (name:tag or name@sha256:…)";
  if (familiarName(parseImage(image).repository) === ENV_IMAGE_REPOSITORY) return `is one of this agent's environment images (${ENV_IMAGE_REPOSITORY}), built from repo jobs' repositories`;
  return null;
}

/** Whether `inspect` is the image `name` names: its tag (or digest) is among the image's names, not only an id or prefix Docker matched. */
export function namesImage(name: ImageName, inspect: Pick<ImageInspect, "RepoTags" | "RepoDigests">): boolean {
  const wanted = familiarName(name.repository);
  const has = (names: string[] | null | undefined, sep: string) =>
    (names ?? []).some((n) => familiarName(n.slice(0, n.lastIndexOf(sep))) === wanted && n.slice(n.lastIndexOf(sep) + 1) === name.tag);
  return name.digest ? has(inspect.RepoDigests, "@") : has(inspect.RepoTags, ":");
}

/** The `name@sha256:…` that pins `name`'s repository in `inspect`, if the image came from (or went to) it. */
export function pinnedReference(name: ImageName, inspect: Pick<ImageInspect, "RepoDigests">): string | null {
  const wanted = familiarName(name.repository);
  return inspect.RepoDigests?.find((d) => familiarName(d.slice(0, d.indexOf("@"))) === wanted) ?? null;
}

/**
 * A registry login from a secret's value, `username:password` (split at the first `:`, so a
 * password may hold colons). The error never shows the value.
 */
export function parseLogin(value: string, registry: string): RegistryAuth {
  const colon = value.indexOf(":");
  if (colon <= 0 || colon === value.length - 1) throw new TaskError("input_error", "command.registry_credentials: the secret must hold username:password");
  return { username: value.slice(0, colon), password: value.slice(colon + 1), serveraddress: registry };
}

/** What a login's value holds that must never show: the whole, and the password on its own. */
export function loginSecrets(value: string | undefined): string[] {
  if (!value) return [];
  const colon = value.indexOf(":");
  return colon === -1 ? [value] : [value, value.slice(colon + 1)];
}

/**
 * Whether a command job's image is pulled or used as it is on this machine:
 * - a job with a registry login always pulls, so the registry, not this machine's cache,
 *   decides whether the login may have the image (layers already here are not fetched
 *   again; a moved tag, `:latest` included, is brought up to date);
 * - an image not here is pulled;
 * - an image here whose repository this agent pulled with a login is pulled again, without
 *   one, so a job that gives none runs it only if the registry serves it to anyone;
 * - else, the image here is used as it is: a tag, `:latest` too, is not re-pulled.
 */
export function pullDecision(f: { local: boolean; login: boolean; pulledWithLogin: boolean }): "pull" | "use" {
  return f.login || !f.local || f.pulledWithLogin ? "pull" : "use";
}

/**
 * Turns a pull's progress into log lines, few enough for a pull of many gigabytes: one when a
 * layer changes state, and one each time its download or extraction passes another
 * `stepPercent`.
 */
export class PullProgress {
  private readonly layers = new Map<string, { status: string; step: number }>();

  constructor(private readonly stepPercent = PULL_PROGRESS_STEP_PERCENT) {}

  /** The line `event` is worth, or null when it only moves a layer within its step. */
  line(event: PullEvent): string | null {
    const { status, id, progressDetail } = event;
    if (!status) return null;
    // The pull's own lines ("Pulling from acme/tool", "Digest: …") carry the tag as their id, or none.
    if (!id || !/^[0-9a-f]{12}$/.test(id)) return status;
    const { current, total } = progressDetail ?? {};
    const percent = total && current !== undefined ? Math.min(100, Math.floor((current / total) * 100)) : null;
    const step = percent === null ? -1 : Math.floor(percent / this.stepPercent);
    const last = this.layers.get(id);
    if (last?.status === status && last.step === step) return null;
    this.layers.set(id, { status, step });
    return `layer ${id}: ${status}${percent === null ? "" : ` ${percent}% of ${megabytes(total!)}`}`;
  }
}

const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/**
 * The repositories this agent pulled with a login, kept in a file so a restarted agent still
 * knows them (see pullDecision). Only ever added to: a repository once private is taken to
 * stay so.
 */
export class LoginPulls {
  private known: Promise<Set<string>> | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly file: string) {}

  async has(repository: string): Promise<boolean> {
    return (await this.load()).has(familiarName(repository));
  }

  /** Recorded before the pull starts, so no job without a login finds the image here unrecorded. */
  async add(repository: string): Promise<void> {
    const known = await this.load();
    const name = familiarName(repository);
    if (known.has(name)) return;
    known.add(name);
    const write = async () => {
      await mkdir(dirname(this.file), { recursive: true });
      await writeFile(`${this.file}.tmp`, JSON.stringify({ repositories: [...known].sort() }));
      await rename(`${this.file}.tmp`, this.file);
    };
    this.writing = this.writing.then(write, write);
    await this.writing;
  }

  private load(): Promise<Set<string>> {
    // Never taken as empty when unreadable: that would hand privately pulled images to jobs without a login.
    this.known ??= this.read().catch((err: unknown) => {
      this.known = null;
      throw new TaskError("image_error", `this worker's record of images pulled with a registry login cannot be read, so it runs no command job until it can: ${errorText(err)}`);
    });
    return this.known;
  }

  private async read(): Promise<Set<string>> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return new Set();
      throw err;
    }
    return new Set((JSON.parse(text) as { repositories: string[] }).repositories);
  }
}

/** Where an agent with state folder `stateDir` records the repositories it pulled with a login. */
export const loginPullsFile = (stateDir: string) => join(stateDir, "images", "pulled-with-login.json");

export interface CommandImagesOptions {
  /** Patterns (`*` = any characters) command jobs' images must match here; empty trusts the control plane's list. */
  allowed: string[];
  /** One pull, the registry's first answer included, must end within this. */
  pullTimeoutMs: number;
  /** The repositories pulled with a login; environment builds read the same record. */
  loginPulls: LoginPulls;
}

export interface ImageOutput {
  system(text: string): void;
  build(text: string): void;
}

/** A command job's login: the secret's name for messages, its value to pull with. */
export interface JobLogin {
  secret: string;
  value: string;
}

/**
 * Command jobs' images: allowed here, pulled when they must be (pullDecision), and pinned:
 * the container runs the image by digest (or, for an image only built here, by id), and the
 * job's `resolved.image` says which.
 */
export class CommandImages {
  constructor(
    private readonly docker: DockerEngine,
    private readonly opts: CommandImagesOptions,
  ) {}

  /** The image to run (a digest reference or an image id) and what the job reports it ran; a TaskError says why not. */
  async ensure(image: string, login: JobLogin | undefined, out: ImageOutput, stop: AbortSignal): Promise<{ image: string; resolved: ResolvedCommits }> {
    if (this.opts.allowed.length && !this.opts.allowed.some((p) => imageMatches(image, p))) {
      throw new TaskError("input_error", `image ${image} is not allowed on this worker (allowed: ${this.opts.allowed.join(", ")})`);
    }
    const notRepo = notARepository(image);
    if (notRepo) throw new TaskError("input_error", `command.image: ${image} ${notRepo}`);
    const name = parseImage(image);
    const auth = login && parseLogin(login.value, name.registry);
    const local = await this.inspect(name);
    const pulledWithLogin = await this.opts.loginPulls.has(name.repository);
    let had = pullDecision({ local: local !== null, login: Boolean(auth), pulledWithLogin }) === "use" ? local : null;
    if (!had) {
      if (auth) await this.opts.loginPulls.add(name.repository);
      const why = auth ? `with the registry login in secret ${login.secret}` : local ? "without a login: it was pulled here for a job that gave one" : "without a login";
      out.system(`[gridx: pulling image ${image} ${why}]`);
      await this.pull(name, auth, out, stop, local !== null && !auth);
      had = await this.inspect(name);
      if (!had) throw new TaskError("image_error", `image ${image} was pulled but is not on this worker under that name: it was removed meanwhile`);
    }
    const pinned = name.digest ? image : pinnedReference(name, had);
    const run = pinned ?? had.Id;
    out.system(`[gridx: image ${image} is ${run}${pinned ? "" : " (built or loaded here, no registry digest)"}]`);
    return { image: run, resolved: { image: run } };
  }

  private async pull(name: ImageName, auth: RegistryAuth | undefined, out: ImageOutput, stop: AbortSignal, anonymousRetry: boolean): Promise<void> {
    const image = `${name.repository}${name.digest ? "@" : ":"}${name.tag}`;
    const progress = new PullProgress();
    let failure: string | null = null;
    try {
      await this.docker.pullImage(name.repository, { tag: name.tag, auth, timeoutMs: this.opts.pullTimeoutMs, signal: stop }, (event) => {
        if (event.error) failure = event.errorDetail?.message ?? event.error;
        const line = progress.line(event);
        if (line) out.build(`${image}: ${line}`);
      });
    } catch (err) {
      if (stop.aborted) throw err;
      if (err instanceof PullTimeoutError) throw new TaskError("image_error", `${err.message} (the agent's --pull-timeout)`);
      if (err instanceof DockerError) failure = err.message;
      else throw err;
    }
    if (failure !== null) {
      const given = auth ? "" : anonymousRetry ? " (this job gives no registry login, and the image was pulled here with one)" : " (this job gives no registry login)";
      throw new TaskError("image_error", `could not pull image ${image}${given}: ${failure}`);
    }
  }

  /** The image `name` names, or null when it is not on this machine by that name (Docker may match something else, such as an id prefix). */
  private async inspect(name: ImageName): Promise<ImageInspect | null> {
    const ref = `${name.repository}${name.digest ? "@" : ":"}${name.tag}`;
    try {
      const found = await this.docker.inspectImage(ref);
      return namesImage(name, found) ? found : null;
    } catch (err) {
      if (err instanceof DockerError && err.status === 404) return null;
      throw err;
    }
  }
}
