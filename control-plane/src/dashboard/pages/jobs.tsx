/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { JobStatus } from "../../../../protocol/index.ts";
import { standingIn } from "../../auth/access.ts";
import { allows } from "../../auth/roles.ts";
import { AppError } from "../../errors.ts";
import { settingsOf } from "../../settings.ts";
import { apiFor, call, type Api } from "../api.ts";
import { enc, flashFrom, orExplain, page, withQuery } from "../render.tsx";
import { wantsFragment, type DashEnv, type Session } from "../session.ts";
import { viewerOf } from "../viewer.ts";
import { JobLive, JobPage, JobsPage, JobTable, jobHref, RunStatus, type JobListQuery } from "../views/jobs.tsx";
import type { Flash, Viewer } from "../views/parts.tsx";
import { DEFAULT_RUN_FORM, RunPage, RunResult, type RunForm } from "../views/run.tsx";
import type { LogPage } from "../views/types.ts";

/** Jobs per page of the job list. */
const JOBS_PER_PAGE = 50;

function jobQuery(c: Context<DashEnv>, project: string | undefined): JobListQuery {
  const status = JobStatus.safeParse(c.req.query("status"));
  return { project, status: status.success ? status.data : undefined, pool: c.req.query("pool") || undefined, array: c.req.query("array") || undefined, cursor: c.req.query("cursor") || undefined };
}

async function jobList(api: Api, q: JobListQuery) {
  return call(api.v1.jobs.$get(withQuery({}, { project: q.project, status: q.status, pool: q.pool, array: q.array, cursor: q.cursor, limit: String(JOBS_PER_PAGE) })));
}

async function jobAndAttempts(api: Api, id: string) {
  const param = { id: enc(id) };
  const [job, history] = await Promise.all([call(api.v1.jobs[":id"].$get({ param })), call(api.v1.jobs[":id"].attempts.$get({ param }))]);
  return { job, attempts: history.attempts };
}

/** What the job page shows of a log: its newest lines, about this much text. */
const LOG_TAIL_BYTES = 256 * 1024;

async function logPage(api: Api, id: string, after: string | undefined): Promise<LogPage> {
  return (await call(api.v1.jobs[":id"].logs.$get(withQuery({ param: { id: enc(id) } }, { after })))) as unknown as LogPage;
}

async function logTail(api: Api, id: string): Promise<LogPage> {
  return (await call(api.v1.jobs[":id"].logs.$get(withQuery({ param: { id: enc(id) } }, { tail: String(LOG_TAIL_BYTES) })))) as unknown as LogPage;
}

/** An event stream of the API passed through as it is (the browser's EventSource reads it). */
function passStream(res: Pick<Response, "ok" | "status" | "body" | "headers">): Response {
  if (!res.ok) return new Response(null, { status: res.status });
  return new Response(res.body, { headers: { "content-type": res.headers.get("content-type") ?? "text/event-stream", "cache-control": "no-cache" } });
}

async function poolNames(api: Api) {
  return (await call(api.v1.pools.$get())).pools.map((p) => p.pool);
}

/** Whether the signed-in user may submit, cancel and rerun in a project (a viewer may not; the API says so too). */
export const actsIn = (session: Session, project: string) => allows(standingIn(session.principal, project), "member");

/** The jobs list, the job page with its live parts, cancel, artifacts, and the run page. */
export const jobPages = new Hono<DashEnv>();

jobPages.get("/ui/jobs", async (c) => {
  const api = await apiFor(c);
  const viewer = await viewerOf(c, api);
  const q = jobQuery(c, viewer.project);
  const list = await jobList(api, q);
  return page(c, <JobsPage viewer={viewer} jobs={list.jobs} nextCursor={list.next_cursor} query={q} now={Date.now()} flash={flashFrom(c)} />);
});
// The fragment names its project in its URL, so what it shows never depends on the cookie.
jobPages.get("/ui/live/jobs", async (c) => {
  const q = jobQuery(c, c.req.query("project") || undefined);
  const list = await jobList(await apiFor(c), q);
  return c.html(<JobTable jobs={list.jobs} nextCursor={list.next_cursor} query={q} now={Date.now()} />);
});

export async function renderJobPage(c: Context<DashEnv>, id: string, flash: Flash, status: ContentfulStatusCode = 200) {
  const api = await apiFor(c);
  // Another project's job is a 404 from the API, and so the dashboard's 404 page.
  const [{ job, attempts }, log, viewer] = await Promise.all([jobAndAttempts(api, id), logTail(api, id), viewerOf(c, api)]);
  return page(c, <JobPage viewer={viewer} job={job} attempts={attempts} log={log} canAct={actsIn(c.var.session, job.project)} flash={flash} />, status);
}

jobPages.get("/ui/jobs/:id", (c) => renderJobPage(c, c.req.param("id"), flashFrom(c)));
jobPages.get("/ui/live/jobs/:id", async (c) => {
  const { job, attempts } = await jobAndAttempts(await apiFor(c), c.req.param("id"));
  return c.html(<JobLive job={job} attempts={attempts} canAct={actsIn(c.var.session, job.project)} />);
});

// The log as it is written (server-sent events), from the cursor or the browser's Last-Event-ID.
jobPages.get("/ui/live/jobs/:id/log", async (c) => {
  const after = c.req.query("after") || undefined;
  const lastEventId = c.req.header("last-event-id");
  const res = await (await apiFor(c)).v1.jobs[":id"].logs.$get(withQuery({ param: { id: enc(c.req.param("id")) } }, { follow: "1", after }), lastEventId ? { headers: { "last-event-id": lastEventId } } : undefined);
  return passStream(res);
});

// The job's state changes, which tell the page to refresh its status region.
jobPages.get("/ui/live/jobs/:id/events", async (c) => {
  const lastEventId = c.req.header("last-event-id");
  const res = await (await apiFor(c)).v1.events.$get({ query: { job: c.req.param("id") } }, lastEventId ? { headers: { "last-event-id": lastEventId } } : undefined);
  return passStream(res);
});

// The whole log as text, read page by page (each page bounded), so it never sits in memory whole.
jobPages.get("/ui/jobs/:id/log.txt", async (c) => {
  const api = await apiFor(c);
  const id = c.req.param("id");
  const encoder = new TextEncoder();
  let next: LogPage | null = await logPage(api, id, undefined);
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!next) return controller.close();
      controller.enqueue(encoder.encode(next.lines.map((l) => l.text + "\n").join("")));
      next = next.more && next.next_cursor ? await logPage(api, id, next.next_cursor) : null;
    },
  });
  return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8", "content-disposition": `inline; filename="${id}.log"` } });
});

// The Open button's tab: a one-time link from POST /v1/jobs/:id/ports/:port/links, made with this
// session's credentials (the API checks read access and that the job runs), then followed there.
jobPages.post("/ui/jobs/:id/ports/:port/open", async (c) => {
  const { id, port } = c.req.param();
  return orExplain(
    async () => {
      const link = await call((await apiFor(c)).v1.jobs[":id"].ports[":port"].links.$post({ param: { id: enc(id), port } }));
      // The API names the origin it was called at, the in-process one here: the tab goes to the
      // dashboard's own, or, with PORTS_DOMAIN, to the port's host under the dashboard's scheme and port.
      const url = new URL(link.url);
      const to = new URL(c.req.url);
      if (settingsOf(c.env).PORTS_DOMAIN) to.hostname = url.hostname;
      return c.redirect(`${to.origin}${url.pathname}${url.search}`, 303);
    },
    (message, status) => renderJobPage(c, id, { error: `Could not open port ${port}: ${message}` }, status),
  );
});

jobPages.post("/ui/jobs/:id/cancel", async (c) => {
  const id = c.req.param("id");
  return orExplain(
    async () => {
      await call((await apiFor(c)).v1.jobs[":id"].cancel.$post({ param: { id: enc(id) } }));
      return c.redirect(`${jobHref(id)}?done=canceled`, 303);
    },
    (message, status) => renderJobPage(c, id, { error: `Could not cancel: ${message}` }, status),
  );
});

// Artifacts: the API answers with a short-lived presigned URL, which the browser follows.
jobPages.get("/ui/jobs/:id/artifacts/:name{.+}", async (c) => {
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
  return {
    script: text("script").replace(/\r\n/g, "\n"),
    project: text("project").trim(),
    pool: text("pool").trim(),
    name: text("name").trim(),
    tags: text("tags").trim(),
    timeout_s: text("timeout_s").trim(),
    memory_mb: text("memory_mb").trim(),
  };
}

/** A form value as a number for the API to judge; an unreadable one stays text so the API names it. */
const numeric = (raw: string) => (raw !== "" && Number.isFinite(Number(raw)) ? Number(raw) : raw || undefined);

/** The projects the viewer may submit to. */
const submittable = (viewer: Viewer) => viewer.projects.filter((p) => allows(p.role, "member")).map((p) => p.name);

jobPages.get("/ui/run", async (c) => {
  const api = await apiFor(c);
  const id = c.req.query("job");
  const [viewer, pools, shown] = await Promise.all([viewerOf(c, api), poolNames(api), id ? Promise.all([jobAndAttempts(api, id), logPage(api, id, undefined)]) : undefined]);
  const projects = submittable(viewer);
  const project = [viewer.project, "default"].find((p) => p !== undefined && projects.includes(p)) ?? projects[0] ?? "";
  let form: RunForm = { ...DEFAULT_RUN_FORM, project };
  if (shown) {
    const { job } = shown[0];
    const task = (job.spec as { task?: { python?: { script?: string } } } | null)?.task;
    form = {
      script: task?.python?.script ?? form.script,
      project: job.project,
      pool: job.pool,
      name: job.name ?? "",
      tags: job.tags.join(", "),
      timeout_s: String(job.limits.timeout_s),
      memory_mb: String(job.limits.memory_mb),
    };
  }
  return page(c, <RunPage viewer={viewer} form={form} projects={projects} pools={pools} job={shown?.[0].job} log={shown?.[1]} />);
});

jobPages.post("/ui/run", async (c) => {
  const form = runFormFrom(await c.req.parseBody());
  const api = await apiFor(c);
  const tags = form.tags.split(/[\s,]+/).filter(Boolean);
  const request = {
    kind: "python" as const,
    python: { script: form.script },
    project: form.project || undefined,
    name: form.name || undefined,
    tags: tags.length > 0 ? tags : undefined,
    pool: form.pool || undefined,
    // An unreadable number goes to the API as typed, so its answer names the field.
    limits: { timeout_s: numeric(form.timeout_s), memory_mb: numeric(form.memory_mb) } as { timeout_s?: number; memory_mb?: number },
  };
  return orExplain(
    async () => {
      const job = await call(api.v1.jobs.$post({ json: request, header: {} }));
      const log: LogPage = { lines: [], next_cursor: null, more: false, status: job.status };
      if (wantsFragment(c)) {
        c.header("x-gridx-job", job.id);
        return c.html(<RunResult job={job} log={log} />, 201);
      }
      return c.redirect(`/ui/run?job=${enc(job.id)}`, 303);
    },
    async (message, status) => {
      const error = `The job was not submitted: ${message}`;
      if (wantsFragment(c)) return c.html(<RunResult error={error} />, status);
      const [viewer, pools] = await Promise.all([viewerOf(c, api), poolNames(api)]);
      return page(c, <RunPage viewer={viewer} form={form} projects={submittable(viewer)} pools={pools} flash={{ error }} />, status);
    },
  );
});

jobPages.get("/ui/live/runs/:id", async (c) => {
  const { job } = await jobAndAttempts(await apiFor(c), c.req.param("id"));
  return c.html(<RunStatus job={job} />);
});
