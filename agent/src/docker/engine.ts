import { request, type IncomingMessage } from "node:http";
import { pipeline, type Readable } from "node:stream";
import { readBody } from "../transfer/http.ts";
import { startExecHijacked, type ExecCreate, type ExecIo } from "./exec.ts";
import type { BuildEvent, ContainerCreateOptions, ContainerInspect, ContainerResources, ContainerSummary, EngineInfo, ImageInspect, ImageSummary, NetworkCreateOptions, NetworkInspect, PullEvent } from "./types.ts";

/** Where the engine listens: a unix socket, or plain HTTP on a TCP port. */
export type EngineAddress = { socketPath: string } | { host: string; port: number };

const DEFAULT_SOCKET = "/var/run/docker.sock";
const DEFAULT_TCP_PORT = 2375;

/**
 * The engine `DOCKER_HOST` names, read as the docker CLI reads it: unset is the local socket,
 * `unix://PATH` a socket, `tcp://HOST[:PORT]` plain HTTP. TLS (`DOCKER_TLS_VERIFY`) and other
 * schemes (ssh://) are refused rather than spoken to in clear or not at all.
 *
 * @example
 * engineAddress({ DOCKER_HOST: "tcp://10.0.0.5:2375" }); // { host: "10.0.0.5", port: 2375 }
 */
export function engineAddress(env: NodeJS.ProcessEnv): EngineAddress {
  const given = env.DOCKER_HOST;
  if (!given) return { socketPath: DEFAULT_SOCKET };
  if (given.startsWith("unix://")) return { socketPath: given.slice("unix://".length) || DEFAULT_SOCKET };
  const tcp = /^tcp:\/\/(?:\[([^\]]+)\]|([^:/[\]]+))(?::(\d+))?\/?$/.exec(given);
  if (tcp && !env.DOCKER_TLS_VERIFY) return { host: (tcp[1] ?? tcp[2])!, port: tcp[3] ? Number(tcp[3]) : DEFAULT_TCP_PORT };
  throw new Error(`DOCKER_HOST=${given}${env.DOCKER_TLS_VERIFY ? " with DOCKER_TLS_VERIFY" : ""} is not supported; use unix:///path/to/docker.sock, or tcp://host:port without TLS`);
}

/**
 * The Engine API version whose requests and fields this client was written and tested
 * against: Docker 20.10's, still what Debian 12 ships.
 */
const API_VERSION = "1.41";

/**
 * The version to speak to an engine that serves `MinAPIVersion` to `ApiVersion`: ours where it
 * can, else the nearest it serves. Docker 29 refuses anything below 1.44; the fields used here
 * mean the same there. An engine older than 1.41 gets its own newest, as an unversioned
 * request would.
 */
export function negotiateApiVersion(engine: { ApiVersion: string; MinAPIVersion?: string }): string {
  if (compareVersions(API_VERSION, engine.ApiVersion) > 0) return engine.ApiVersion;
  if (engine.MinAPIVersion && compareVersions(API_VERSION, engine.MinAPIVersion) < 0) return engine.MinAPIVersion;
  return API_VERSION;
}

function compareVersions(a: string, b: string): number {
  const [aMajor = 0, aMinor = 0] = a.split(".").map(Number);
  const [bMajor = 0, bMinor = 0] = b.split(".").map(Number);
  return aMajor - bMajor || aMinor - bMinor;
}

/**
 * The engine answered with an error status. `message` is Docker's own text, fit to show a
 * user ("No such image: gridx/x:1"); `status` tells the kinds apart (404: no such container
 * or image, 409: conflict).
 */
export class DockerError extends Error {
  override readonly name = "DockerError";

  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The engine did not answer a call in time: a hung engine, not a refusal. It names the call
 * (method and path), so a job failed by it says what the engine was asked.
 */
export class DockerTimeoutError extends Error {
  override readonly name = "DockerTimeoutError";

  constructor(
    readonly call: string,
    readonly timeoutMs: number,
  ) {
    super(`the Docker engine did not answer ${call} within ${timeoutMs / 1000}s`);
  }
}

/** How long the engine has to answer a call, unless the DockerEngine is told otherwise. */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

export interface DockerEngineOptions {
  /**
   * A call's answer must arrive within this (default 30 s), and for a short call (create,
   * start, inspect, remove...) its whole body too. Long-lived bodies (an attach stream, a
   * wait, a build's progress) are bounded only until their answer begins.
   */
  callTimeoutMs?: number;
}

export interface BuildOptions {
  tag: string;
  /** The Dockerfile's path inside the build context. */
  dockerfile: string;
  labels: Record<string, string>;
  signal?: AbortSignal;
  /** What every RUN step's container gets; the classic builder has no pids limit, hence `cgroupParent`. */
  confine?: BuildConfinement;
}

/** The limits and network of a build's RUN containers, as `POST /build` takes them. */
export interface BuildConfinement {
  memoryBytes: number;
  /** Memory plus swap; equal to `memoryBytes` for no swap. */
  memswapBytes: number;
  /** CFS quota over `cpuPeriodUs`: the CPUs a step may use. */
  cpuQuotaUs: number;
  cpuPeriodUs: number;
  /** `none`, or a network's name. */
  networkMode: string;
  ulimits: { Name: string; Soft: number; Hard: number }[];
  /** A cgroup (cgroupfs path) the step containers are made under, whose own limits bind them all. */
  cgroupParent?: string;
}

interface Call {
  query?: Record<string, string>;
  json?: unknown;
  /** A streamed request body, such as a build context. */
  body?: Readable;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Sent without the /vX.Y prefix: only for the calls that come before a version is chosen. */
  unversioned?: boolean;
  /** Added to the call's timeout, for a call that waits by design (a stop's grace). */
  extraMs?: number;
}

/** Reads a call's answer once its status says success. */
type Reader<T> = (res: IncomingMessage) => T | Promise<T>;

/**
 * The few Docker Engine API calls the agent makes, over `node:http`. Written here rather than
 * taken from dockerode, whose gRPC, protobuf and ssh2 dependencies cost an idle agent about
 * 29 MiB of its 80 MiB budget.
 * Every call rejects with a `DockerError` when the engine says no, with a `DockerTimeoutError`
 * when it does not answer in time, and with the socket's own error when it cannot be reached.
 *
 * @example
 * const docker = new DockerEngine();
 * const id = await docker.createContainer({ Image: "gridx/python:latest", Cmd: ["true"] });
 * await docker.startContainer(id);
 * const exitCode = await docker.waitContainer(id);
 */
export class DockerEngine {
  private version: Promise<string> | null = null;
  private readonly callTimeoutMs: number;

  constructor(
    private readonly address: EngineAddress = engineAddress(process.env),
    opts: DockerEngineOptions = {},
  ) {
    this.callTimeoutMs = opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  async ping(): Promise<void> {
    await this.text("GET", "/_ping", { unversioned: true });
  }

  info(): Promise<EngineInfo> {
    return this.json("GET", "/info");
  }

  /** The image, if it is on this engine; a missing one rejects with status 404. */
  inspectImage(name: string): Promise<ImageInspect> {
    return this.json("GET", `/images/${imageRef(name)}/json`);
  }

  /** Images carrying every one of `labels` (`key` or `key=value`). */
  listImages(labels: string[]): Promise<ImageSummary[]> {
    return this.json("GET", "/images/json", { query: { filters: JSON.stringify({ label: labels }) } });
  }

  /**
   * Builds `context` (a tar stream) with the classic builder, passing each progress line to
   * `onEvent`. Intermediate containers are removed, even after a failed step. A failed build
   * resolves like a good one, its failure being an event with `error`, as Docker reports it.
   */
  async buildImage(context: Readable, opts: BuildOptions, onEvent: (event: BuildEvent) => void): Promise<void> {
    const res = await this.long("POST", "/build", {
      query: { t: opts.tag, dockerfile: opts.dockerfile, labels: JSON.stringify(opts.labels), rm: "1", forcerm: "1", ...(opts.confine && confinementQuery(opts.confine)) },
      body: context,
      headers: { "content-type": "application/x-tar" },
      signal: opts.signal,
    });
    await readJsonLines(res, onEvent);
  }

  /**
   * Pulls `image` at `tag` (a tag or a `sha256:` digest) with the registry login in `auth`,
   * passing each progress line to `onEvent`. The whole pull, the registry's first answer
   * included, must end within `timeoutMs`, else it rejects with a PullTimeoutError; `signal`
   * abandons it. A refusal before any layer moves (no such image, login refused, registry
   * down) rejects with the engine's DockerError; one after resolves, its failure being an
   * event with `error`, as with builds.
   */
  async pullImage(image: string, opts: PullOptions, onEvent: (event: PullEvent) => void): Promise<void> {
    const bound = AbortSignal.timeout(opts.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, bound]) : bound;
    try {
      const res = await this.long("POST", "/images/create", {
        query: { fromImage: image, tag: opts.tag },
        headers: opts.auth ? { "x-registry-auth": registryAuthHeader(opts.auth) } : {},
        signal,
        // The registry, not the engine, is what a pull waits for: the pull's own bound covers it.
        extraMs: opts.timeoutMs,
      });
      await readJsonLines(res, onEvent);
    } catch (err) {
      if (bound.aborted && !opts.signal?.aborted) throw new PullTimeoutError(`${image}:${opts.tag}`, opts.timeoutMs);
      throw err;
    }
  }

  /**
   * Removes the image (by name: the name; by id: an untagged image) and the untagged parents
   * only it needed. Never forced: one a container uses, or with children, is refused (409).
   */
  async removeImage(name: string): Promise<void> {
    await this.text("DELETE", `/images/${imageRef(name)}`);
  }

  /** Creates a container and returns its id. */
  async createContainer({ name, ...body }: ContainerCreateOptions): Promise<string> {
    const created = await this.json<{ Id: string }>("POST", "/containers/create", { query: name ? { name } : {}, json: body });
    return created.Id;
  }

  /**
   * The container's stdout and stderr, multiplexed (read them with `FrameDemuxer`), from now
   * until it exits. Attach before starting it, or early output is lost. Docker takes the
   * connection over and answers with a body that ends when the container's output does, so
   * pausing this stream holds the container's writes back.
   */
  attachContainer(id: string): Promise<Readable> {
    return this.long("POST", `/containers/${encodeURIComponent(id)}/attach`, { query: { stream: "1", stdout: "1", stderr: "1" } });
  }

  async startContainer(id: string): Promise<void> {
    await this.text("POST", `/containers/${encodeURIComponent(id)}/start`);
  }

  /**
   * Changes a container's resource limits, running or not (on cgroup v1 and v2 alike). Only
   * the fields given change; Docker orders the memory and swap writes itself.
   */
  async updateContainer(id: string, resources: ContainerResources): Promise<void> {
    await this.text("POST", `/containers/${encodeURIComponent(id)}/update`, { json: resources });
  }

  async renameContainer(id: string, name: string): Promise<void> {
    await this.text("POST", `/containers/${encodeURIComponent(id)}/rename`, { query: { name } });
  }

  /** SIGTERM, then SIGKILL after `graceS` seconds; resolves once it has stopped. */
  async stopContainer(id: string, graceS: number): Promise<void> {
    await this.text("POST", `/containers/${encodeURIComponent(id)}/stop`, { query: { t: String(graceS) }, extraMs: graceS * 1000 });
  }

  /** The exit code, once the container has stopped, however long that takes. */
  async waitContainer(id: string): Promise<number> {
    // The engine answers at once and sends the body when the container stops.
    const res = await this.long("POST", `/containers/${encodeURIComponent(id)}/wait`);
    return (JSON.parse(await readBody(res)) as { StatusCode: number }).StatusCode;
  }

  inspectContainer(id: string): Promise<ContainerInspect> {
    return this.json("GET", `/containers/${encodeURIComponent(id)}/json`);
  }

  /** Removes the container, running or not, with its anonymous volumes. */
  async removeContainer(id: string): Promise<void> {
    await this.text("DELETE", `/containers/${encodeURIComponent(id)}`, { query: { force: "1", v: "1" } });
  }

  /** Containers, running or not, carrying every one of `labels` (`key` or `key=value`). */
  listContainers(labels: string[]): Promise<ContainerSummary[]> {
    return this.json("GET", "/containers/json", { query: { all: "1", filters: JSON.stringify({ label: labels }) } });
  }

  /** Creates a process to run in the (running) container, as its user, attached; returns the exec's id. */
  async createExec(container: string, exec: ExecCreate): Promise<string> {
    const body = { ...exec, AttachStdin: true, AttachStdout: true, AttachStderr: true };
    return (await this.json<{ Id: string }>("POST", `/containers/${encodeURIComponent(container)}/exec`, { json: body })).Id;
  }

  /** Starts a created exec; its connection becomes the process's stdin and output (exec.ts). */
  async startExec(id: string, tty: boolean): Promise<ExecIo> {
    return startExecHijacked(this.address, `/v${await this.apiVersion()}/exec/${encodeURIComponent(id)}/start`, tty);
  }

  /** `ExitCode` is null while the process runs. */
  inspectExec(id: string): Promise<{ Running: boolean; ExitCode: number | null }> {
    return this.json("GET", `/exec/${encodeURIComponent(id)}/json`);
  }

  /** A TTY exec's terminal size. */
  async resizeExec(id: string, cols: number, rows: number): Promise<void> {
    await this.text("POST", `/exec/${encodeURIComponent(id)}/resize`, { query: { w: String(cols), h: String(rows) } });
  }

  /** Creates a network and returns its id. */
  async createNetwork(body: NetworkCreateOptions): Promise<string> {
    const created = await this.json<{ Id: string }>("POST", "/networks/create", { json: body });
    return created.Id;
  }

  /** The network, by name or id; a missing one rejects with status 404. */
  inspectNetwork(name: string): Promise<NetworkInspect> {
    return this.json("GET", `/networks/${encodeURIComponent(name)}`);
  }

  /** Removes the network; one a container is still attached to is refused (403). */
  async removeNetwork(name: string): Promise<void> {
    await this.text("DELETE", `/networks/${encodeURIComponent(name)}`);
  }

  /** Networks carrying every one of `labels` (`key` or `key=value`); all of them for none. */
  listNetworks(labels: string[] = []): Promise<NetworkInspect[]> {
    return this.json("GET", "/networks", { query: labels.length ? { filters: JSON.stringify({ label: labels }) } : {} });
  }

  private async json<T>(method: string, path: string, call?: Call): Promise<T> {
    return JSON.parse(await this.text(method, path, call)) as T;
  }

  /** A short call: its answer and its whole body within the timeout. */
  private text(method: string, path: string, call: Call = {}): Promise<string> {
    return this.roundTrip(method, path, call, true, readBody);
  }

  /** A long-lived body (a stream, a wait), the caller's to read: only its answer is bounded. */
  private long(method: string, path: string, call: Call = {}): Promise<IncomingMessage> {
    return this.roundTrip(method, path, call, false, (res) => res);
  }

  /**
   * Makes a call, failing it with a DockerTimeoutError unless the engine answers in time;
   * `bodyBounded` keeps the clock running while `read` reads the body. The clock starts once
   * the API version is known (its own call, timed as any), or, for a streamed request body (a
   * build context, made as it is sent), once that is all sent.
   */
  private async roundTrip<T>(method: string, path: string, call: Call, bodyBounded: boolean, read: Reader<T>): Promise<T> {
    const prefix = call.unversioned ? "" : `/v${await this.apiVersion()}`;
    const ms = this.callTimeoutMs + (call.extraMs ?? 0);
    const timeout = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const what = `${method} ${decodeURIComponent(path)}`;
    // A streamed body may finish sending after the engine already answered (an early error): no clock then.
    const arm = () => {
      if (!settled) timer = setTimeout(() => timeout.abort(new DockerTimeoutError(what, ms)), ms);
    };
    if (!call.body) arm();
    try {
      const res = await this.send(method, prefix + path, call, timeout.signal, arm);
      if (!bodyBounded) clearTimeout(timer);
      return await read(res);
    } catch (err) {
      // Whatever the abort broke (the socket, the body), the cause is the timeout.
      throw timeout.signal.aborted ? (timeout.signal.reason as Error) : err;
    } finally {
      settled = true;
      clearTimeout(timer);
    }
  }

  /** The response once its status says success; its body is the caller's to read. */
  private send(method: string, path: string, call: Call, timeout: AbortSignal, sent: () => void): Promise<IncomingMessage> {
    const params = String(new URLSearchParams(call.query));
    const query = params ? `?${params}` : "";
    const headers = call.json === undefined ? call.headers : { ...call.headers, "content-type": "application/json" };
    return new Promise((resolve, reject) => {
      const req = request(
        {
          ...this.address,
          method,
          path: path + query,
          headers,
          signal: call.signal ? AbortSignal.any([call.signal, timeout]) : timeout,
          // A connection per request: an attach stream, which Docker takes over, must never be
          // pooled, and a local socket costs next to nothing to open.
          agent: false,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(res);
          readBody(res).then((text) => reject(new DockerError(status, errorMessage(text, status))), reject);
        },
      );
      req.on("error", reject);
      if (call.body) {
        req.on("finish", sent);
        pipeline(call.body, req, (err) => {
          if (err) reject(err);
        });
      }
      else req.end(call.json === undefined ? undefined : JSON.stringify(call.json));
    });
  }

  /** Asked of the engine once; a failure (the engine not up yet) is not kept, so a later call asks again. */
  private apiVersion(): Promise<string> {
    if (!this.version) {
      const asked = this.json<{ ApiVersion: string; MinAPIVersion?: string }>("GET", "/version", { unversioned: true }).then(negotiateApiVersion);
      asked.catch(() => {
        if (this.version === asked) this.version = null;
      });
      this.version = asked;
    }
    return this.version;
  }
}

/** A registry login for one pull. */
export interface RegistryAuth {
  username: string;
  password: string;
  /** The registry's host (`ghcr.io`, `127.0.0.1:5000`). */
  serveraddress: string;
}

export interface PullOptions {
  tag: string;
  auth?: RegistryAuth;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** A pull ran past its time bound (`--pull-timeout`): a slow or hung registry, not the engine. */
export class PullTimeoutError extends Error {
  override readonly name = "PullTimeoutError";

  constructor(
    readonly image: string,
    readonly timeoutMs: number,
  ) {
    super(`pulling ${image} took longer than ${timeoutMs / 1000}s`);
  }
}

/**
 * `X-Registry-Auth`: the login as JSON in URL-safe base64. Padded, since Docker 20.10 refuses
 * unpadded (it reads it as no login at all: "no basic auth credentials").
 */
export function registryAuthHeader(auth: RegistryAuth): string {
  return Buffer.from(JSON.stringify(auth)).toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
}

/** Reads a JSON-lines progress body (a build's, a pull's) to its end, a line at a time. */
async function readJsonLines<T>(res: IncomingMessage, onEvent: (event: T) => void): Promise<void> {
  let partial = "";
  res.setEncoding("utf8");
  for await (const chunk of res as AsyncIterable<string>) {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) onEvent(JSON.parse(line) as T);
  }
  if (partial.trim()) onEvent(JSON.parse(partial) as T);
}

function confinementQuery(c: BuildConfinement): Record<string, string> {
  return {
    memory: String(c.memoryBytes),
    memswap: String(c.memswapBytes),
    cpuquota: String(c.cpuQuotaUs),
    cpuperiod: String(c.cpuPeriodUs),
    networkmode: c.networkMode,
    ulimits: JSON.stringify(c.ulimits),
    ...(c.cgroupParent && { cgroupparent: c.cgroupParent }),
  };
}

/** An image reference as a path: its slashes stay, anything else unusual is escaped. */
function imageRef(name: string): string {
  return name.split("/").map(encodeURIComponent).join("/");
}

/** Docker's errors are `{"message": "..."}`; a proxy in between may send anything. */
function errorMessage(body: string, status: number): string {
  try {
    const message = (JSON.parse(body) as { message?: unknown }).message;
    if (typeof message === "string" && message) return message;
  } catch {
    // not JSON: fall through to the text itself
  }
  return body.trim() || `the Docker engine answered HTTP ${status}`;
}
