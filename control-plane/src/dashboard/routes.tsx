/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { JobStatus } from "../../../protocol/index.ts";
import { AppError } from "../errors.ts";
import { ApiError, apiFor, call, type Api } from "./api.ts";
import { APP_CSS, APP_JS } from "./assets.ts";
import { endSession, requireSession, safeNext, sameOriginPosts, securityHeaders, startSession, verifyToken, wantsFragment, type DashEnv } from "./session.ts";
import { isTerminal, JobLive, JobPage, JobsPage, JobTable, jobHref, LogLines, RunStatus, type JobListQuery } from "./views/jobs.tsx";
import { LoginPage } from "./views/login.tsx";
import { OVERVIEW_MINUTES, OverviewPage, PoolCards, type Overview } from "./views/overview.tsx";
import { DONE_MESSAGES, Layout, type DoneCode, type Flash } from "./views/parts.tsx";
import { DEFAULT_RUN_FORM, RunPage, RunResult, type RunForm } from "./views/run.tsx";
import type { LogPage } from "./views/types.ts";
import { WorkersPage, WorkerTable } from "./views/workers.tsx";

/** Paths served without a session: signing in and out, and the static assets. */
const PUBLIC_PATHS = new Set(["/ui/login", "/ui/logout", "/ui/assets/app.css", "/ui/assets/app.js"]);
/** Pools the overview draws charts for. */
const OVERVIEW_POOLS = 12;
/** Jobs per page of the job list. */
const JOBS_PER_PAGE = 50;

const enc = encodeURIComponent;

function page(c: Context<DashEnv>, node: HtmlEscapedString | Promise<HtmlEscapedString>, status: ContentfulStatusCode = 200) {
  return c.html(html`<!doctype html>${node}`, status);
}

/**
 * Parameters for routes whose query the API reads without a typed validator; their OpenAPI
 * schemas will type them.
 */
const withQuery = <P extends object>(base: P, query: Record<string, string | undefined>) => ({ ...base, query });

function flashFrom(c: Context<DashEnv>): Flash {
  const done = c.req.query("done");
  return { done: done && done in DONE_MESSAGES ? (done as DoneCode) : undefined };
}

const statusStatus = (status: number): ContentfulStatusCode => (status >= 400 && status <= 599 ? (status as ContentfulStatusCode) : 500);

// ---- data, through the typed API client -------------------------------------------------

async function overviewData(api: Api): Promise<Overview> {
  const { pools } = await call(api.v1.pools.$get());
  const shown = await Promise.all(
    pools.slice(0, OVERVIEW_POOLS).map(async (pool) => ({
      pool,
      stats: await call(api.v1.pools[":pool"].stats.$get({ param: { pool: enc(pool.pool) }, query: { minutes: OVERVIEW_MINUTES } })),
    })),
  );
  return { pools: shown, more: pools.slice(OVERVIEW_POOLS).map((p) => p.pool) };
}

function jobQuery(c: Context<DashEnv>): JobListQuery {
  const status = JobStatus.safeParse(c.req.query("status"));
  return { status: status.success ? status.data : undefined, pool: c.req.query("pool") || undefined, cursor: c.req.query("cursor") || undefined };
}

async function jobList(api: Api, q: JobListQuery) {
  return call(api.v1.jobs.$get(withQuery({}, { status: q.status, pool: q.pool, cursor: q.cursor, limit: String(JOBS_PER_PAGE) })));
}

async function jobAndAttempts(api: Api, id: string) {
  const param = { id: enc(id) };
  const [job, history] = await Promise.all([call(api.v1.jobs[":id"].$get({ param })), call(api.v1.jobs[":id"].attempts.$get({ param }))]);
  return { job, attempts: history.attempts };
}

async function logPage(api: Api, id: string, after: string | undefined): Promise<LogPage> {
  return (await call(api.v1.jobs[":id"].logs.$get(withQuery({ param: { id: enc(id) } }, { after })))) as unknown as LogPage;
}

async function workerList(api: Api, pool: string | undefined) {
  return (await call(api.v1.workers.$get(withQuery({}, { pool })))).workers;
}

async function poolNames(api: Api) {
  return (await call(api.v1.pools.$get())).pools.map((p) => p.pool);
}

// ---- the routes -----------------------------------------------------------------------------

/**
 * The dashboard: server-rendered pages under `/ui` that call the API in-process with the
 * signed-in user's token, plus HTML fragments under `/ui/live` that the page script polls.
 */
export const dashboardRoutes = new Hono<DashEnv>();

// Browsers that open the bare origin land on the dashboard; API clients still get a JSON 404.
dashboardRoutes.use("/", async (c, next) => {
  if (c.req.method === "GET" && c.req.header("accept")?.includes("text/html")) return c.redirect("/ui", 302);
  return next();
});

const session = requireSession();
dashboardRoutes.use("/ui/*", securityHeaders(), sameOriginPosts(), async function sessionUnlessPublic(c, next) {
  return PUBLIC_PATHS.has(c.req.path) ? next() : session(c, next);
});

dashboardRoutes.get("/ui/assets/app.css", (c) => c.body(APP_CSS, 200, { "content-type": "text/css; charset=utf-8", "cache-control": "public, max-age=300" }));
dashboardRoutes.get("/ui/assets/app.js", (c) => c.body(APP_JS, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "public, max-age=300" }));

dashboardRoutes.get("/ui/login", (c) => page(c, <LoginPage next={safeNext(c.req.query("next"))} signedOut={c.req.query("signed_out") === "1"} />));

dashboardRoutes.post("/ui/login", async (c) => {
  const form = await c.req.parseBody();
  const token = typeof form.token === "string" ? form.token.trim() : "";
  const next = safeNext(typeof form.next === "string" ? form.next : undefined);
  if (!token) return page(c, <LoginPage next={next} error="Enter a token." />, 400);
  if (!(await verifyToken(c.env, token))) {
    return page(c, <LoginPage next={next} error="That token was refused: it is not a valid API or admin token, or it has been revoked." />, 401);
  }
  startSession(c, token);
  return c.redirect(next, 303);
});

dashboardRoutes.post("/ui/logout", (c) => {
  endSession(c);
  return c.redirect("/ui/login?signed_out=1", 303);
});

// Overview: pools with queue depth, running jobs, and charts of the last hour.
dashboardRoutes.get("/ui", async (c) => page(c, <OverviewPage session={c.var.session} overview={await overviewData(await apiFor(c))} flash={flashFrom(c)} />));
dashboardRoutes.get("/ui/live/overview", async (c) => c.html(<PoolCards overview={await overviewData(await apiFor(c))} />));

// Jobs.
dashboardRoutes.get("/ui/jobs", async (c) => {
  const q = jobQuery(c);
  const list = await jobList(await apiFor(c), q);
  return page(c, <JobsPage session={c.var.session} jobs={list.jobs} nextCursor={list.next_cursor} query={q} now={Date.now()} flash={flashFrom(c)} />);
});
dashboardRoutes.get("/ui/live/jobs", async (c) => {
  const q = jobQuery(c);
  const list = await jobList(await apiFor(c), q);
  return c.html(<JobTable jobs={list.jobs} nextCursor={list.next_cursor} query={q} now={Date.now()} />);
});

async function renderJobPage(c: Context<DashEnv>, id: string, flash: Flash, status: ContentfulStatusCode = 200) {
  const api = await apiFor(c);
  const [{ job, attempts }, log] = await Promise.all([jobAndAttempts(api, id), logPage(api, id, undefined)]);
  return page(c, <JobPage session={c.var.session} job={job} attempts={attempts} log={log} flash={flash} />, status);
}

dashboardRoutes.get("/ui/jobs/:id", (c) => renderJobPage(c, c.req.param("id"), flashFrom(c)));
dashboardRoutes.get("/ui/live/jobs/:id", async (c) => {
  const { job, attempts } = await jobAndAttempts(await apiFor(c), c.req.param("id"));
  return c.html(<JobLive job={job} attempts={attempts} />);
});

// New log lines after a cursor; the headers tell the script where to go on and when to stop.
dashboardRoutes.get("/ui/live/jobs/:id/log", async (c) => {
  const after = c.req.query("after") || undefined;
  const log = await logPage(await apiFor(c), c.req.param("id"), after);
  const next = log.next_cursor ?? after;
  if (next) c.header("x-gridx-after", next);
  c.header("x-gridx-done", isTerminal(log.status) && log.lines.length === 0 ? "1" : "0");
  return c.html(<LogLines lines={log.lines} />);
});

dashboardRoutes.post("/ui/jobs/:id/cancel", async (c) => {
  const id = c.req.param("id");
  try {
    await call((await apiFor(c)).v1.jobs[":id"].cancel.$post({ param: { id: enc(id) } }));
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401 && err.status !== 404) return renderJobPage(c, id, { error: `Could not cancel: ${err.message}` }, statusStatus(err.status));
    throw err;
  }
  return c.redirect(`${jobHref(id)}?done=canceled`, 303);
});

// Artifacts: the API answers with a short-lived presigned URL, which the browser follows.
dashboardRoutes.get("/ui/jobs/:id/artifacts/:name{.+}", async (c) => {
  const name = c.req.param("name").split("/").map(enc).join("/");
  const res = await (await apiFor(c)).v1.jobs[":id"].artifacts[":name{.+}"].$get({ param: { id: enc(c.req.param("id")), name }, query: {} });
  const location = res.headers.get("location");
  if (res.status === 302 && location) return c.redirect(location, 302);
  await call(res);
  throw new AppError("internal", "the API did not answer with a download URL");
});

// Run Python (seed 003's "Colab-lite").
function runFormFrom(body: Record<string, unknown>): RunForm {
  const text = (k: keyof RunForm) => (typeof body[k] === "string" ? (body[k] as string) : "");
  return { script: text("script").replace(/\r\n/g, "\n"), pool: text("pool").trim(), timeout_s: text("timeout_s").trim(), memory_mb: text("memory_mb").trim() };
}

/** A form value as a number for the API to judge; an unreadable one stays text so the API names it. */
const numeric = (raw: string) => (raw !== "" && Number.isFinite(Number(raw)) ? Number(raw) : raw || undefined);

dashboardRoutes.get("/ui/run", async (c) => {
  const api = await apiFor(c);
  const id = c.req.query("job");
  const [pools, shown] = await Promise.all([poolNames(api), id ? Promise.all([jobAndAttempts(api, id), logPage(api, id, undefined)]) : undefined]);
  let form = DEFAULT_RUN_FORM;
  if (shown) {
    const { job } = shown[0];
    const task = (job.spec as { task?: { python?: { script?: string } } } | null)?.task;
    form = { script: task?.python?.script ?? form.script, pool: job.pool, timeout_s: String(job.limits.timeout_s), memory_mb: String(job.limits.memory_mb) };
  }
  return page(c, <RunPage session={c.var.session} form={form} pools={pools} job={shown?.[0].job} log={shown?.[1]} />);
});

dashboardRoutes.post("/ui/run", async (c) => {
  const form = runFormFrom(await c.req.parseBody());
  const api = await apiFor(c);
  const request = {
    kind: "python" as const,
    python: { script: form.script },
    pool: form.pool || undefined,
    // An unreadable number goes to the API as typed, so its answer names the field.
    limits: { timeout_s: numeric(form.timeout_s), memory_mb: numeric(form.memory_mb) } as { timeout_s?: number; memory_mb?: number },
  };
  try {
    const job = await call(api.v1.jobs.$post({ json: request, header: {} }));
    const log: LogPage = { lines: [], next_cursor: null, status: job.status };
    if (wantsFragment(c)) {
      c.header("x-gridx-job", job.id);
      return c.html(<RunResult job={job} log={log} />, 201);
    }
    return c.redirect(`/ui/run?job=${enc(job.id)}`, 303);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    const error = `The job was not submitted: ${err.message}`;
    if (wantsFragment(c)) return c.html(<RunResult error={error} />, statusStatus(err.status));
    return page(c, <RunPage session={c.var.session} form={form} pools={await poolNames(api)} flash={{ error }} />, statusStatus(err.status));
  }
});

dashboardRoutes.get("/ui/live/runs/:id", async (c) => {
  const { job } = await jobAndAttempts(await apiFor(c), c.req.param("id"));
  return c.html(<RunStatus job={job} />);
});

// Workers.
const poolQuery = (c: Context<DashEnv>) => c.req.query("pool") || undefined;

async function renderWorkersPage(c: Context<DashEnv>, flash: Flash, status: ContentfulStatusCode = 200) {
  const pool = poolQuery(c);
  const workers = await workerList(await apiFor(c), pool);
  return page(c, <WorkersPage session={c.var.session} workers={workers} pool={pool} now={Date.now()} flash={flash} />, status);
}

dashboardRoutes.get("/ui/workers", (c) => renderWorkersPage(c, flashFrom(c)));
dashboardRoutes.get("/ui/live/workers", async (c) => {
  const pool = poolQuery(c);
  const workers = await workerList(await apiFor(c), pool);
  return c.html(<WorkerTable workers={workers} pool={pool} admin={c.var.session.principal.kind === "admin"} now={Date.now()} />);
});

for (const action of ["drain", "undrain"] as const) {
  dashboardRoutes.post(`/ui/workers/:id/${action}`, async (c) => {
    const api = await apiFor(c);
    const param = { id: enc(c.req.param("id")) };
    try {
      await call(action === "drain" ? api.v1.workers[":id"].drain.$post({ param }) : api.v1.workers[":id"].undrain.$post({ param }));
    } catch (err) {
      if (err instanceof ApiError && err.status !== 401) return renderWorkersPage(c, { error: `Could not ${action} the worker: ${err.message}` }, statusStatus(err.status));
      throw err;
    }
    return c.redirect(`/ui/workers?done=${action}ed`, 303);
  });
}

dashboardRoutes.get("/ui/*", (c) => page(c, <ErrorPage c={c} status={404} message={`There is no dashboard page at ${c.req.path}.`} />, 404));

const ErrorPage = ({ c, status, message }: { c: Context<DashEnv>; status: number; message: string }) => (
  <Layout title={status === 404 ? "Not found" : "Error"} session={c.get("session")}>
    <h1>{status === 404 ? "Not found" : "Something went wrong"}</h1>
    <p class="error" role="alert">
      {message}
    </p>
    <p>
      <a href="/ui">Back to the overview</a>
    </p>
  </Layout>
);

dashboardRoutes.onError((err, c) => {
  const status = err instanceof ApiError ? err.status : err instanceof AppError ? err.status : 500;
  if (status === 401) {
    endSession(c);
    if (wantsFragment(c)) return c.text("sign in again", 401);
    return c.redirect(c.req.method === "GET" ? `/ui/login?next=${enc(c.req.path)}` : "/ui/login", 303);
  }
  if (status === 500) console.error(`dashboard ${c.req.method} ${c.req.path} failed`, err);
  const message = status === 500 ? "The dashboard hit an internal error; it has been logged." : err.message;
  if (wantsFragment(c)) return c.text(message, statusStatus(status));
  return page(c, <ErrorPage c={c} status={status} message={message} />, statusStatus(status));
});
