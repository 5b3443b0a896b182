import { hc, type ClientResponse } from "hono/client";
import type { SuccessStatusCode } from "hono/utils/http-status";
// Types only: the CLI never loads control-plane code, it derives its calls from the app's type.
import type { AppType } from "../../control-plane/src/app.ts";
import type { Config } from "./config.ts";
import { CliError, NetworkError } from "./errors.ts";
import { EXIT } from "./exit-codes.ts";
import { nodeFetch } from "./http.ts";

/** The API as typed calls, derived from the control plane's routes (`hc<AppType>`). */
export type Rpc = ReturnType<typeof hc<AppType>>;

type AnyResponse = ClientResponse<unknown, number, string>;
/** The JSON body of the success statuses of a typed response. */
type OkBody<R> = R extends ClientResponse<infer T, infer S, infer F> ? (S extends SuccessStatusCode ? (F extends "json" ? T : never) : never) : never;

/** What to tell the user when the server says 403 or 404 to this call. */
export interface Hints {
  notFound?: string;
  forbidden?: string;
  /** The flags (or arguments) that set this call's fields, before the job flags below. */
  fields?: [prefix: string, flag: string][];
}

/** A quota named in a 429 or 413, and the flag of `gridx projects set` that changes it. */
const QUOTA_FLAGS: Record<string, string> = {
  max_running_jobs: "--max-running",
  max_queued_jobs: "--max-queued",
  max_gpus: "--max-gpus",
  max_dataset_bytes: "--max-dataset-bytes",
};

/** The request field a 400 names, and the flag that sets it. */
const FIELD_FLAGS: [prefix: string, flag: string][] = [
  ["limits.timeout_s", "--timeout"],
  ["limits.memory_mb", "--memory"],
  ["limits.cpus", "--cpus"],
  ["limits.pids", "--pids"],
  ["requirements.gpus", "--gpus"],
  ["requirements.labels", "--label"],
  ["requirements", "--cpus, --memory, --gpus or --label"],
  ["max_retries", "--retries"],
  ["priority", "--priority"],
  ["pool", "--pool"],
  ["worker", "--worker"],
  ["env", "--env"],
  ["inputs", "--input or --artifact"],
  ["array", "--array"],
  ["depends_on", "--after"],
  ["retry.on", "--retry-on"],
  ["retry.exit_codes", "--retry-exit-codes"],
  ["retry.max", "--retries"],
  ["retry.backoff_s", "--retry-backoff"],
  ["retry", "--retry-on, --retries, --retry-exit-codes or --retry-backoff"],
  ["queue_ttl_s", "--queue-ttl"],
  ["command.image", "--image"],
  ["command.argv", "the command after --"],
  ["python.script", "the script file"],
  ["python.args", "the script's arguments"],
  ["repo", "--code-repo, --code-commit, --env-repo, --env-commit or --dockerfile"],
  ["project", "--project, GRIDX_PROJECT or `gridx config set project`"],
  ["name", "--name"],
  ["tags", "--tag"],
  ["secrets", "--secret"],
];

type ErrorDetail = { code?: string; message?: string; field?: string; quota?: string; limit?: number; usage?: number };

/** What a quota refusal or a rate limit adds to its message: the quota and how to raise it, when to retry. */
function limitText(error: ErrorDetail | undefined, retryAfter: string | null): string {
  const parts: string[] = [];
  if (error?.quota) {
    const flag = QUOTA_FLAGS[error.quota];
    const used = error.limit !== undefined ? `: ${error.usage ?? "?"} of ${error.limit} in use` : "";
    parts.push(`quota ${error.quota}${used}`);
    if (flag) parts.push(`a project owner raises it with gridx projects set PROJECT ${flag} N`);
  } else if (error?.limit !== undefined) {
    parts.push(`the limit is ${error.limit}`);
  }
  if (retryAfter) parts.push(`retry after ${retryAfter} s`);
  return parts.length ? ` (${parts.join("; ")})` : "";
}

/** Turns an answer that is not a success into an error that says what to do. */
async function apiError(res: AnyResponse, base: string, hints: Hints = {}): Promise<CliError> {
  const text = await res.text().catch(() => "");
  let error: ErrorDetail | undefined;
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error;
  } catch {
    error = undefined;
  }
  const message = error?.message ?? (text.trim().slice(0, 200) || res.statusText || `status ${res.status}`);
  switch (res.status) {
    case 401:
      return new CliError(`${base} refused the token (${message}): run \`gridx login ${base}\` with a valid token, or set GRIDX_TOKEN`, EXIT.auth);
    case 403:
      return new CliError(`${message}${hints.forbidden ? `: ${hints.forbidden}` : ""}`, EXIT.auth);
    case 404:
      return new CliError(`${message}${hints.notFound ? `: ${hints.notFound}` : ""}`);
    case 400: {
      const field = error?.field;
      const flag = field ? [...(hints.fields ?? []), ...FIELD_FLAGS].find(([prefix]) => field === prefix || field.startsWith(`${prefix}.`))?.[1] : undefined;
      return new CliError(`the server refused the request: ${message}${flag ? ` (set by ${flag})` : ""}`);
    }
    case 409:
      return new CliError(message);
    case 413:
    case 429:
      return new CliError(`${message}${limitText(error, res.headers.get("retry-after"))}`);
    default:
      if (res.status >= 500) return new CliError(`the control plane failed (${res.status}): ${message}; try again, and if it persists, read its logs (wrangler tail)`);
      return new CliError(`${res.status}: ${message}`);
  }
}

/** `fetch`, with network failures turned into errors that say what to check. */
function friendlyFetch(base: string, inner: typeof fetch): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    try {
      return await inner(input, init);
    } catch (err) {
      if ((err as Error).name === "AbortError") throw err;
      // fetch wraps the socket's error as its cause; node:http throws it as it is.
      type Cause = { code?: string; message?: string };
      const cause = (err as { cause?: Cause }).cause ?? (err as Cause);
      const why = cause.code ?? cause.message ?? (err as Error).message;
      throw new NetworkError(`cannot reach ${base} (${why}): is the control plane running, and is the URL right? (gridx login URL, or GRIDX_URL)`);
    }
  }) as typeof fetch;
}

/**
 * The control plane as the CLI calls it: typed calls (`rpc`, Hono's client over the app's
 * type) and helpers that unwrap their answers or throw a `CliError`.
 *
 * @example
 * const api = ApiClient.fromConfig(resolveConfig());
 * const job = await api.json(api.rpc.v1.jobs[":id"].$get({ param: { id } }), { notFound: "list jobs with `gridx list`" });
 */
export class ApiClient {
  readonly rpc: Rpc;
  /** The token's header, for the calls outside the typed routes (`raw`, the exec socket). */
  readonly auth: { authorization: string };
  private readonly fetch: typeof fetch;

  constructor(
    readonly base: string,
    token: string,
    fetchImpl: typeof fetch = nodeFetch,
  ) {
    this.auth = { authorization: `Bearer ${token}` };
    this.fetch = friendlyFetch(base, fetchImpl);
    this.rpc = hc<AppType>(base, { headers: this.auth, fetch: this.fetch });
  }

  /**
   * A call by path, for what the app forwards rather than types (a job's ports, through the
   * tunnel): the same token and network errors; the answer as it is.
   */
  raw(path: string, init: { method?: string; body?: string } = {}): Promise<Response> {
    return this.fetch(`${this.base.replace(/\/+$/, "")}${path}`, { ...init, headers: { ...this.auth, ...(init.body === undefined ? {} : { "content-type": "application/json" }) } });
  }

  /** An answer that is not a success as the error that says what to do (see `json`). */
  error(res: Pick<Response, "status" | "statusText" | "url" | "text"> & { headers: { get(name: string): string | null } }, hints?: Hints): Promise<CliError> {
    return apiError(res as AnyResponse, this.base, hints);
  }

  static fromConfig(config: Config): ApiClient {
    return new ApiClient(config.url, config.token);
  }

  /** The JSON body of a successful answer. */
  async json<R extends AnyResponse>(call: Promise<R>, hints?: Hints): Promise<OkBody<R>> {
    const res = await call;
    if (res.ok) return (await res.json()) as OkBody<R>;
    throw await apiError(res, this.base, hints);
  }

  /** A successful answer as it is (a stream to read). */
  async ok<R extends AnyResponse>(call: Promise<R>, hints?: Hints): Promise<R> {
    const res = await call;
    if (res.ok) return res;
    throw await apiError(res, this.base, hints);
  }

  /** Where a redirecting route points (call it with `{ init: { redirect: "manual" } }`). */
  async location(call: Promise<AnyResponse>, hints?: Hints): Promise<string> {
    const res = await call;
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location) return location;
    if (res.ok) throw new CliError(`expected a redirect from ${res.url}, got ${res.status}`);
    throw await apiError(res, this.base, hints);
  }
}

/** Path segments as the routes expect them: each part encoded, `/` kept between parts. */
export const pathParam = (value: string) => value.split("/").map(encodeURIComponent).join("/");

/** Per-call options that leave a redirect for the caller to follow. */
export const MANUAL_REDIRECT = { init: { redirect: "manual" } } as const;
