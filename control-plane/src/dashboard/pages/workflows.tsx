/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { apiFor, call } from "../api.ts";
import { enc, flashFrom, orExplain, page, withQuery } from "../render.tsx";
import type { DashEnv } from "../session.ts";
import { viewerOf } from "../viewer.ts";
import { jobHref } from "../views/jobs.tsx";
import type { Flash } from "../views/parts.tsx";
import { arrayHref, ArrayPage, SchedulesPage } from "../views/workflows.tsx";
import { actsIn, renderJobPage } from "./jobs.tsx";

/** Schedules the schedules page lists (the API's page limit). */
const SCHEDULES_SHOWN = 200;
/** Failed tasks the array page links to by id, read in one page of the job list. */
const FAILED_TASKS_LINKED = 200;

/** Rerunning a job, an array's page and cancel, and the schedules list. */
export const workflowPages = new Hono<DashEnv>();

// A rerun goes through POST /v1/jobs/:id/rerun, as the CLI's does: the API checks the member role.
workflowPages.post("/ui/jobs/:id/rerun", async (c) => {
  const id = c.req.param("id");
  return orExplain(
    async () => {
      const copy = await call((await apiFor(c)).v1.jobs[":id"].rerun.$post({ param: { id: enc(id) }, header: {} }));
      return c.redirect(`${jobHref(copy.id)}?done=rerun`, 303);
    },
    (message, status) => renderJobPage(c, id, { error: `Could not rerun: ${message}` }, status),
  );
});

async function renderArrayPage(c: Context<DashEnv>, id: string, flash: Flash, status: ContentfulStatusCode = 200) {
  const api = await apiFor(c);
  // Another project's array is a 404 from the API, and so the dashboard's 404 page.
  const [a, viewer] = await Promise.all([call(api.v1.arrays[":id"].$get({ param: { id: enc(id) } })), viewerOf(c, api)]);
  // Only the lowest failed indices are linked; the rest are in the filtered job list.
  const failed = a.failed_indices.length
    ? (await call(api.v1.jobs.$get(withQuery({}, { array: a.id, status: "failed", limit: String(FAILED_TASKS_LINKED) })))).jobs.flatMap((j) => (j.array_index === null ? [] : [{ index: j.array_index, id: j.id }]))
    : [];
  return page(c, <ArrayPage viewer={viewer} a={a} failed={failed} canCancel={actsIn(c.var.session, a.project)} flash={flash} />, status);
}

workflowPages.get("/ui/arrays/:id", (c) => renderArrayPage(c, c.req.param("id"), flashFrom(c)));

workflowPages.post("/ui/arrays/:id/cancel", async (c) => {
  const id = c.req.param("id");
  return orExplain(
    async () => {
      await call((await apiFor(c)).v1.arrays[":id"].cancel.$post({ param: { id: enc(id) } }));
      return c.redirect(`${arrayHref(id)}?done=array_canceled`, 303);
    },
    (message, status) => renderArrayPage(c, id, { error: `Could not cancel the array: ${message}` }, status),
  );
});

workflowPages.get("/ui/schedules", async (c) => {
  const api = await apiFor(c);
  const viewer = await viewerOf(c, api);
  const list = await call(api.v1.schedules.$get({ query: { limit: String(SCHEDULES_SHOWN), ...(viewer.project ? { project: viewer.project } : {}) } }));
  return page(c, <SchedulesPage viewer={viewer} schedules={list.schedules} project={viewer.project} />);
});
