import { SELF } from "cloudflare:test";
import * as fc from "fast-check";
import type { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgentTokenRequest,
  ApiTokenRequest,
  ArtifactComplete,
  ArtifactPrepare,
  BatchRequest,
  DatasetCreate,
  JobRequest,
  MemberPut,
  PartUrlsRequest,
  PoolSandbox,
  ProbeRequest,
  ProjectCreate,
  ProjectPatch,
  SecretValue,
  UploadComplete,
  UserCreate,
} from "../../control-plane/src/schemas.ts";
import { CoordinatorToAgent, decodeFrame, HEARTBEAT_FRAME } from "../../protocol/index.ts";
import { mutate, mutation, nastyString, nastyValue, RAW_JSON_TEXTS } from "../helpers/fuzz-values.ts";
import { arbitraryFor, type JsonSchema } from "../helpers/json-schema-arbitrary.ts";
import { WebhookCreate } from "../../control-plane/src/webhooks/schemas.ts";
import { AutoscaleHookPut } from "../../control-plane/src/routes/autoscale.ts";
import { ScheduleCreate, SchedulePatch } from "../../control-plane/src/routes/schedules.ts";
import { AgentBundleCreate, PoolUpgradeRequest } from "../../control-plane/src/schemas.ts";
import { BroadcastRequest } from "../../control-plane/src/schemas.ts";
import { checkProperty, fuzzTestTimeoutMs } from "./fuzz.ts";
import { ADMIN, agentToken, api, FakeAgent, newProject, submit, uniquePool, userToken } from "./helpers.ts";

/**
 * Every route of /openapi.json, fed generated requests: valid and mutated bodies, arbitrary
 * JSON and text, path parameters, queries, headers and credentials of every kind. Property:
 * never a 5xx, and every 4xx is the API's error body. Replay a failure with the command it prints.
 */

const FILE = "test/control-plane/fuzz-routes.test.ts";
const BASE = "http://gridx.test";
/** Requests per route: 32 routes × this × about 5 ms each. */
const RUNS_PER_ROUTE = 40;
/** Past a log line's and a script's own limits, and past MAX_BODY_BYTES (1 MiB). */
const HUGE_CHARS = [70_000, 300_000, 1_100_000] as const;
/** A path parameter past every route's own bound, still under the runtime's URL limits. */
const LONG_PARAM = "x".repeat(10_000);
const BODY_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

type Parameter = { name: string; in: "path" | "query" | "header"; required?: boolean; schema: JsonSchema };
type Operation = { description?: string; parameters?: Parameter[]; requestBody?: { content: Record<string, { schema: JsonSchema }> }; responses: Record<string, unknown> };
type OpenApi = { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, JsonSchema> } };

const doc = (await (await SELF.fetch(`${BASE}/openapi.json`)).json()) as OpenApi;
const resolve = (ref: string) => {
  const schema = doc.components.schemas[ref.replace("#/components/schemas/", "")];
  if (!schema) throw new Error(`no schema ${ref}`);
  return schema;
};
const ROUTES = Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ method: method.toUpperCase(), path, op })));
const ERROR_CODES = (resolve("#/components/schemas/Error") as { properties: { error: { properties: { code: { enum: string[] } } } } }).properties.error.properties.code.enum;

/** What exists, so generated requests also name real jobs, workers, datasets, secrets and a held attempt. */
type World = {
  tokens: Record<"admin" | "user" | "agent", string>;
  /** Values by parameter or property name. */
  known: Record<string, fc.Arbitrary<unknown>>;
  /** Real ids for an `{id}` parameter, by the collection its path is under. */
  ids: Record<string, fc.Arbitrary<string>>;
  stop: () => void;
};
let world: World;

async function created(path: string, json: unknown): Promise<string> {
  const res = await api(path, { method: "POST", json });
  if (res.status !== 201) throw new Error(`${path}: ${res.status} ${res.text}`);
  return res.json.id;
}

async function buildWorld(): Promise<World> {
  await newProject({ name: "fuzz" });
  const { token: user, user: userName } = await userToken({ project: "fuzz", role: "owner" });
  const pool = uniquePool();
  const agent = await agentToken(pool, "fuzz");
  const holder = await FakeAgent.join(agent, { name: "holder", slots: 1 });
  // The holder answers probes at once, so a probe request does not wait for its timeout.
  holder.agent.ws.addEventListener("message", (ev) => {
    for (const m of decodeFrame(String(ev.data), CoordinatorToAgent)) {
      if (m.ok && m.message.type === "probe") {
        holder.agent.send({ type: "probe_result", payload: { probe_id: m.message.payload.probe_id, status: "refused", exit_code: null, output: "", truncated: false, error: "fuzz" } });
      }
    }
  });
  // WORKER_TIMEOUT_S is 2 in tests: without heartbeats the holder would lose its attempt mid-suite.
  const beat = setInterval(() => holder.agent.sendRaw(HEARTBEAT_FRAME), 500);
  const held = (await submit({ pool })).json.id as string;
  await holder.agent.next("assign_job");
  holder.agent.send({ type: "job_started", payload: { job_id: held, attempt: 1 } });
  const queued = (await submit({ pool: uniquePool() })).json.id as string;
  const gone = await FakeAgent.join(agent, { name: "gone" });
  gone.agent.close();
  const small = await created("/v1/datasets", { name: "fuzz.bin", size: 10 });
  const multipart = await created("/v1/datasets", { name: "fuzz-big.bin", size: 20 * 1024 * 1024 });
  const secret = await api("/v1/projects/fuzz/secrets/tok", { method: "PUT", json: { value: "x" } });
  if (secret.status !== 200) throw new Error(`secret: ${secret.status} ${secret.text}`);
  const known = {
    job_id: fc.constantFrom(held, queued),
    attempt: fc.constantFrom(1, 2),
    pool: fc.constantFrom(pool, "default"),
    project: fc.constantFrom("fuzz", "default"),
    user: fc.constantFrom(userName, "admin"),
    name: fc.constantFrom("tok", "out/result.txt", "holder"),
    image: fc.constantFrom("gridx/python:latest", "busybox:1"),
    code_repo_url: fc.constant("https://example.com/code.git"),
    env_repo_url: fc.constant("https://example.com/env.git"),
    dataset: fc.constantFrom(small, multipart),
    part_numbers: fc.constant([1, 2]),
    // One key for every run, so a replay with another body reaches the 409.
    "Idempotency-Key": fc.constant("fuzz-key"),
    after: fc.constantFrom("1.0", "0.0"),
    cursor: fc.constantFrom("1.0", "0"),
  };
  return {
    tokens: { admin: ADMIN, user, agent },
    known,
    ids: { "/v1/jobs": fc.constantFrom(held, queued), "/v1/workers": fc.constantFrom(holder.workerId, gone.workerId), "/v1/datasets": fc.constantFrom(small, multipart) },
    stop: () => {
      clearInterval(beat);
      holder.agent.close();
    },
  };
}

type Body = { json: unknown } | { text: string } | { empty: true };
type Case = { auth: string | null; params: Record<string, { value: string; raw: boolean }>; query: [string, string][]; headers: [string, string][]; body: Body | null };

type Kind = keyof World["tokens"];
/** How openapi.ts's `access()` names each kind of token in a route's description. */
const KIND_TEXT: Record<Kind, string> = { admin: "the admin token", user: "an API token", agent: "an agent token" };

/** One part of a request, well formed or not; a case spoils at most one part, or all of them. */
type Part<T> = { good: fc.Arbitrary<T>; any: fc.Arbitrary<T> };

function authPart(tokens: World["tokens"], op: Operation): Part<string | null> {
  const kinds = Object.keys(tokens) as Kind[];
  const admitted = kinds.filter((k) => op.description?.includes(KIND_TEXT[k]));
  const kind = fc.constantFrom(...kinds);
  const good = admitted.length ? fc.constantFrom(...admitted).map((k) => `Bearer ${tokens[k]}`) : fc.constant(null);
  return {
    good,
    any: fc.oneof(
      kind.map((k) => `Bearer ${tokens[k]}`),
      fc.tuple(kind, fc.constantFrom("cut", "longer", "bare", "lower", "basic", "two")).map(([k, how]) => bent(tokens[k], how)),
      fc.constantFrom(null, "", "Bearer", "Bearer ", "Bearer gxu_nope", "Bearer gxa_nope", "Basic dXNlcjpwYXNz", "Token x"),
      nastyString.map((s) => `Bearer ${s}`),
    ),
  };
}

/** A real token, altered: each kind of credential is also tried slightly wrong. */
function bent(token: string, how: string): string {
  switch (how) {
    case "cut":
      return `Bearer ${token.slice(0, -1)}`;
    case "longer":
      return `Bearer ${token}x`;
    case "bare":
      return token;
    case "lower":
      return `bearer ${token.toUpperCase()}`;
    case "basic":
      return `Basic ${btoa(`${token}:`)}`;
    default:
      return `Bearer ${token} ${token}`;
  }
}

const CONTENT_TYPES = [
  "application/json; charset=utf-8",
  "APPLICATION/JSON",
  "application/merge-patch+json",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "",
  "application/jsonx",
  "json",
] as const;

const EXTRA_HEADERS: [string, fc.Arbitrary<string>][] = [
  ["last-event-id", fc.oneof(fc.constantFrom("1.0", "9999999.9999999"), nastyString)],
  ["upgrade", fc.constantFrom("websocket", "h2c")],
  ["x-gridx-pool", fc.constantFrom("default", "other")],
  ["x-gridx-token-id", fc.constantFrom("admin", "t_x")],
  ["accept", fc.constantFrom("text/event-stream", "*/*")],
  ["content-encoding", fc.constantFrom("gzip", "br")],
];

function bodyPart(op: Operation, method: string): Part<Body | null> {
  if (!BODY_METHODS.has(method)) return { good: fc.constant(null), any: fc.constant(null) };
  const junk: fc.Arbitrary<Body>[] = [
    fc.jsonValue().map((json): Body => ({ json })),
    fc.constantFrom(...RAW_JSON_TEXTS).map((text): Body => ({ text })),
    fc.string({ unit: "binary" }).map((text): Body => ({ text })),
    fc.constant<Body>({ empty: true }),
    nastyValue(HUGE_CHARS).map((json): Body => ({ json })),
  ];
  const schema = op.requestBody?.content["application/json"]?.schema;
  if (!schema) return { good: fc.constantFrom<Body | null>(null, { empty: true }), any: fc.oneof(...junk) };
  const valid = arbitraryFor(schema, { resolve, known: world.known });
  return {
    good: valid.map((json): Body => ({ json })),
    any: fc.oneof(
      { weight: 4, arbitrary: fc.tuple(valid, mutation(HUGE_CHARS)).map(([v, m]): Body => ({ json: mutate(v, m) })) },
      { weight: 1, arbitrary: fc.tuple(valid, fc.nat()).map(([v, n]): Body => ({ text: JSON.stringify(v).slice(0, n % JSON.stringify(v).length) })) },
      ...junk,
    ),
  };
}

const asText = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

function valuePart(p: Parameter, path: string): Part<string> {
  const ids = Object.entries(world.ids).find(([prefix]) => path.startsWith(`${prefix}/`))?.[1];
  const known = p.name === "id" ? ids : world.known[p.name];
  const valid = arbitraryFor(p.schema, { resolve }).map(asText);
  return {
    good: known ? fc.oneof({ weight: 3, arbitrary: known.map(asText) }, valid) : valid,
    any: fc.oneof({ weight: 3, arbitrary: nastyString }, fc.constant(LONG_PARAM)),
  };
}

type Pairs = [string, string][];

/** The declared parameters of one place (query or header), each present or not. */
function pairsPart(params: Parameter[], path: string): Part<Pairs> {
  const each = (pick: (v: Part<string>) => fc.Arbitrary<string>) =>
    fc.tuple(...params.map((p) => fc.option(pick(valuePart(p, path)).map((v): [string, string] => [p.name, v]), { freq: 3 }))).map((xs) => xs.filter((x) => x !== null));
  return { good: each((v) => v.good), any: each((v) => fc.oneof(v.good, v.any)) };
}

function caseArbitrary(path: string, method: string, op: Operation): fc.Arbitrary<Case> {
  const params = op.parameters ?? [];
  const inPath = params.filter((p) => p.in === "path");
  const pathPart = (pick: (v: Part<string>) => fc.Arbitrary<string>, raw: fc.Arbitrary<boolean>) =>
    fc.record(Object.fromEntries(inPath.map((p) => [p.name, fc.record({ value: pick(valuePart(p, path)), raw })])));
  const query = pairsPart(params.filter((p) => p.in === "query"), path);
  const declared = pairsPart(params.filter((p) => p.in === "header"), path);
  // A route that answers 101 is a WebSocket: well formed means an upgrade.
  const upgrade: Pairs = "101" in op.responses ? [["upgrade", "websocket"]] : [];
  const extraHeaders = fc
    .tuple(
      fc.option(fc.constantFrom(...CONTENT_TYPES)),
      fc.subarray(EXTRA_HEADERS, { maxLength: 2 }).chain((picked) => fc.tuple(...picked.map(([name, v]) => v.map((x): [string, string] => [name, x])))),
    )
    .map(([type, extra]): Pairs => [...(type === null ? [] : [["content-type", type] as [string, string]]), ...extra]);
  const parts = {
    auth: authPart(world.tokens, op),
    params: { good: pathPart((v) => v.good, fc.constant(false)), any: pathPart((v) => fc.oneof(v.good, v.any), fc.boolean()) },
    query: { good: query.good, any: fc.tuple(query.any, fc.array(fc.tuple(nastyString, nastyString), { maxLength: 2 })).map(([a, b]) => [...a, ...b]) },
    headers: { good: declared.good.map((h) => [...upgrade, ...h]), any: fc.tuple(declared.any, extraHeaders).map(([a, b]) => [...a, ...b]) },
    body: bodyPart(op, method),
  };
  type Key = keyof typeof parts;
  const keys = Object.keys(parts) as Key[];
  const build = (spoiled: (k: Key) => boolean) =>
    fc.record(Object.fromEntries(keys.map((k) => [k, spoiled(k) ? parts[k].any : parts[k].good])) as { [K in Key]: (typeof parts)[K]["good"] }) as fc.Arbitrary<Case>;
  // Well formed, one part spoiled (so the others get past their checks), or everything at once.
  return fc.oneof({ weight: 2, arbitrary: build(() => false) }, { weight: 2 * keys.length, arbitrary: fc.constantFrom(...keys).chain((bad) => build((k) => k === bad)) }, build(() => true));
}

/** Header values are bytes: characters past Latin-1 and line breaks cannot be sent at all. */
const headerSafe = (v: string) => v.replace(/[^\t\x20-\x7e\x80-\xff]/g, "?");

function render(path: string, method: string, c: Case): { url: string; init: RequestInit } {
  const filled = path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const p = c.params[name]!;
    return p.raw ? p.value : encodeURIComponent(p.value);
  });
  const url = new URL(BASE + filled);
  for (const [k, v] of c.query) url.searchParams.append(k, v);
  const headers = new Headers();
  if (c.auth !== null) headers.set("authorization", headerSafe(c.auth));
  for (const [k, v] of c.headers) headers.set(k, headerSafe(v));
  let body: string | undefined;
  if (c.body && "json" in c.body) body = JSON.stringify(c.body.json) ?? "null";
  else if (c.body && "text" in c.body) body = c.body.text;
  // Unless the case picked another type, a body is declared JSON, so bad text reaches the JSON checks.
  if (c.body && !headers.has("content-type")) headers.set("content-type", "application/json");
  return { url: url.href, init: { method, headers, body, redirect: "manual" } };
}

/** What is wrong with an answer, or null: a 5xx, or a 4xx that is not `{error: {code, message, field?}}`. */
function problemWith(status: number, type: string, text: string): string | null {
  if (status >= 500) return `answered ${status}: ${text.slice(0, 300)}`;
  if (status < 400) return null;
  if (!/^application\/json/.test(type)) return `answered ${status} as ${type || "no content type"}: ${text.slice(0, 300)}`;
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    return `answered ${status} with a body that is not JSON: ${text.slice(0, 300)}`;
  }
  const e = body?.error;
  const shaped =
    Object.keys(body ?? {}).join() === "error" &&
    e &&
    typeof e === "object" &&
    ERROR_CODES.includes(e.code) &&
    typeof e.message === "string" &&
    e.message.length > 0 &&
    (e.field === undefined || typeof e.field === "string") &&
    // A quota or a rate limit says which, its value and the usage: numbers and a name, as documented.
    (e.quota === undefined || typeof e.quota === "string") &&
    ["limit", "usage"].every((k) => e[k] === undefined || typeof e[k] === "number") &&
    Object.keys(e).every((k) => ["code", "message", "field", "quota", "limit", "usage"].includes(k));
  return shaped ? null : `answered ${status} with a body not of the error shape: ${text.slice(0, 300)}`;
}

async function answer(url: string, init: RequestInit): Promise<{ status: number; type: string; text: string }> {
  const res = await SELF.fetch(url, init);
  const type = res.headers.get("content-type") ?? "";
  if (res.webSocket) {
    // The agents' socket: a real upgrade, which is all this property asks of it.
    res.webSocket.accept();
    res.webSocket.close(1000, "fuzz");
    return { status: res.status, type, text: "" };
  }
  if (type.startsWith("text/event-stream")) {
    await res.body?.cancel();
    return { status: res.status, type, text: "" };
  }
  return { status: res.status, type, text: await res.text() };
}

const describeRequest = ({ url, init }: { url: string; init: RequestInit }) => {
  const body = typeof init.body === "string" ? init.body : "";
  return `${init.method} ${url.slice(0, 300)} headers ${JSON.stringify([...(init.headers as Headers)]).slice(0, 400)} body(${body.length}) ${body.slice(0, 200)}`;
};

/** The zod schema behind each request body the document names, to check the generator against. */
const BODY_SCHEMAS: Record<string, z.ZodType> = {
  AgentTokenRequest,
  ApiTokenRequest,
  ArtifactComplete,
  ArtifactPrepare,
  BatchRequest,
  DatasetCreate,
  JobRequest,
  MemberPut,
  PartUrlsRequest,
  PoolSandbox,
  ProbeRequest,
  ProjectCreate,
  ProjectPatch,
  SecretValue,
  UploadComplete,
  UserCreate,
  WebhookCreate,
  AutoscaleHookPut,
  ScheduleCreate,
  SchedulePatch,
  AgentBundleCreate,
  PoolUpgradeRequest,
  BroadcastRequest,
};

beforeAll(async () => {
  world = await buildWorld();
});
afterAll(() => world.stop());

describe("the generators", () => {
  it("cover every route of the document", () => {
    expect(ROUTES.length).toBeGreaterThanOrEqual(30);
    expect(ROUTES.map((r) => `${r.method} ${r.path}`)).toContain("POST /v1/jobs");
  });

  it("make request bodies that the routes' own schemas accept", () => {
    for (const { op } of ROUTES) {
      const ref = op.requestBody?.content["application/json"]?.schema.$ref;
      if (!ref) continue;
      const name = ref.replace("#/components/schemas/", "");
      const zod = BODY_SCHEMAS[name];
      expect(zod, `the zod schema of ${name}`).toBeDefined();
      for (const value of fc.sample(arbitraryFor(resolve(ref), { resolve }), 50)) {
        // Refinements (`custom`) are rules JSON Schema cannot carry; anything else is the generator's fault.
        const wrong = zod!.safeParse(value).error?.issues.filter((i) => i.code !== "custom") ?? [];
        expect(wrong.map((i) => `${name} ${JSON.stringify(value)}: ${i.path.join(".")} ${i.message}`)).toEqual([]);
      }
    }
  });
});

for (const { method, path, op } of ROUTES) {
  const name = `${method} ${path}`;
  it(
    `${method} ${path}`,
    async () => {
      await expect(checkProperty(
        name,
        fc.asyncProperty(caseArbitrary(path, method, op), async (c) => {
          let request: { url: string; init: RequestInit };
          try {
            request = render(path, method, c);
          } catch {
            // A raw parameter that makes no URL: nothing reaches the API.
            fc.pre(false);
            return;
          }
          const res = await answer(request.url, request.init);
          const problem = problemWith(res.status, res.type, res.text);
          if (problem) throw new Error(`${describeRequest(request)}\n  ${problem}`);
        }),
        RUNS_PER_ROUTE,
        FILE,
      ),
      ).resolves.toBeUndefined();
    },
    fuzzTestTimeoutMs(),
  );
}
