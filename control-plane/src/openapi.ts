import { OpenAPIHono, type z } from "@hono/zod-openapi";
import type { Principal } from "./auth/principal.ts";
import type { AppEnv } from "./env.ts";
import { requireAuth } from "./middleware/auth.ts";
import { jsonBodyGuard, validationHook } from "./middleware/validate.ts";
import { ErrorBody } from "./schemas.ts";

/**
 * A sub-app whose routes are declared with `createRoute`: zod validates each request, and
 * the same schemas describe the route in `/openapi.json`.
 *
 * @example
 * export const things = router().openapi(createRoute({ ... }), (c) => c.json(..., 200));
 */
export function router() {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

/** The bearer scheme every authenticated route names in `security`. */
export const BEARER = "bearer";

const WHO: Record<Principal["kind"], string> = { admin: "the admin token", user: "an API token", agent: "an agent token" };

/**
 * Who may call a route: the auth middleware, the body guard (size limit, JSON only) and the
 * route's `security` entry, from one place.
 *
 * @example
 * createRoute({ ...access("admin", "user"), method: "get", path: "/", ... })
 */
export function access(...kinds: Principal["kind"][]) {
  return {
    middleware: [requireAuth(...kinds), jsonBodyGuard],
    security: [{ [BEARER]: [] }],
    description: `Needs ${kinds.map((k) => WHO[k]).join(" or ")}.`,
  };
}

/** A JSON response of a schema. */
export const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { "application/json": { schema } } });

/** A required JSON request body of a schema. */
export const body = <S extends z.ZodType>(schema: S) => ({ required: true, content: { "application/json": { schema } } });

const ERROR_TEXT = {
  400: "The request is not valid: `error.field` names the field, `error.message` the problem.",
  401: "No token, or a token that is not valid or has been revoked.",
  403: "A valid token whose role does not allow this: the message names the role needed.",
  404: "No such resource.",
  409: "The resource's state does not allow this.",
  413: "The body, or the size it declares, is over the limit.",
  426: "The agent speaks another protocol version.",
  429: "Over a rate limit (see `Retry-After`) or a project quota (`error.quota`, `error.limit`, `error.usage`).",
  502: "The job's worker is not connected, or nothing answers in the job (`error.reset` says why).",
  504: "The worker did not answer in time.",
} as const;
type ErrorStatus = keyof typeof ERROR_TEXT;

/**
 * The error responses a route can give, each `{error: {code, message, field?}}`; with 401
 * (a route that takes a token) comes 429, the rate limit.
 *
 * @example
 * responses: { 200: json(Job, "the job"), ...errors(400, 401, 403, 404) }
 */
export function errors<C extends ErrorStatus>(...codes: C[]) {
  // A route that takes a token may be over a rate limit, whatever else it answers.
  const all: ErrorStatus[] = codes.includes(401 as C) && !codes.includes(429 as C) ? [...codes, 429] : codes;
  return Object.fromEntries(all.map((code) => [code, json(ErrorBody, ERROR_TEXT[code])])) as {
    [K in C | 429]: { description: string; content: { "application/json": { schema: typeof ErrorBody } } };
  };
}

const DOCUMENT_INFO = {
  openapi: "3.1.0",
  info: {
    title: "gridx",
    version: "1",
    description:
      "Pools compute machines behind NAT into one grid. Submit jobs (a Python script, an argv command, a versioned repo), follow their logs, fetch artifacts; move large files as datasets through presigned URLs. Errors are `{error: {code, message, field?}}` with a 4xx status.",
  },
  tags: [
    { name: "jobs", description: "Submit, read, cancel and follow jobs; their artifacts." },
    { name: "workers", description: "The machines of the grid; draining and operator probes." },
    { name: "datasets", description: "Large inputs, uploaded once through presigned URLs and mounted read-only into jobs." },
    { name: "projects", description: "Users, projects, members and roles, quotas, and the audit log." },
    { name: "tokens", description: "Issuing, listing and revoking API and agent tokens." },
    { name: "secrets", description: "Per-project secrets (repository credentials for repo jobs), encrypted at rest." },
    { name: "pools", description: "What each pool holds now, and its throughput and wait over time." },
    { name: "webhooks", description: "Job events POSTed, signed, to a URL of yours; their deliveries and retries." },
    { name: "schedules", description: "Job templates submitted on a cron expression; their runs." },
    { name: "agent", description: "What agents call: their WebSocket and artifact uploads." },
    { name: "ops", description: "Health and metrics." },
  ],
} as const;

type Documented = Pick<OpenAPIHono<AppEnv>, "getOpenAPI31Document">;
const documents = new WeakMap<Documented, ReturnType<Documented["getOpenAPI31Document"]>>();

/**
 * The OpenAPI 3.1 document of an app, built once per isolate from its routes' schemas, with
 * the calling origin as its server. Hono's multi-segment parameters (`{name{.+}}`) are
 * written as plain ones (`{name}`).
 */
export function openApiDocument(app: Documented, origin: string) {
  let doc = documents.get(app);
  if (!doc) {
    const built = app.getOpenAPI31Document({ ...DOCUMENT_INFO, tags: [...DOCUMENT_INFO.tags] });
    const paths = Object.fromEntries(Object.entries(built.paths ?? {}).map(([path, item]) => [path.replace(/\{(\w+)\{[^/]*?\}\}/g, "{$1}"), item]));
    doc = { ...built, paths };
    documents.set(app, doc);
  }
  return { ...doc, servers: [{ url: origin, description: "this control plane" }] };
}
