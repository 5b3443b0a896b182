import { createRoute, z } from "@hono/zod-openapi";
import { ProjectName, type JobRequest as JobRequestInput } from "../../../protocol/index.ts";
import { readableProjects } from "../auth/access.ts";
import { actorName, type Principal } from "../auth/principal.ts";
import type { Role } from "../auth/roles.ts";
import { audit } from "../audit.ts";
import { createDb, type Db } from "../db/client.ts";
import { countSchedules, deleteSchedule, getSchedule, insertSchedule, listRuns, listSchedules, scheduleRunView, scheduleView, updateSchedule, type ScheduleRow } from "../db/schedules.ts";
import { AppError } from "../errors.ts";
import { newId } from "../ids.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { JobRequest, Schedule, SchedulePage, ScheduleRunPage } from "../schemas.ts";
import { checkTimezone, CronError, parseCron } from "../workflows/cron.ts";
import { refuseBatchReferences } from "../workflows/references.ts";
import { pokeScheduleClock } from "../workflows/schedule-clock.ts";
import { scheduleSettingsOf, tickClock } from "../workflows/schedule-settings.ts";
import { mustGetProject, mustOwn } from "./guards.ts";

const tags = ["schedules"];
const user = access("admin", "user");

const ScheduleName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "letters, digits, '.', '_' or '-', 1 to 100 characters")
  .openapi({ example: "nightly-report" });
const refined =
  (check: (v: string) => unknown) =>
  (v: string, ctx: z.RefinementCtx) => {
    try {
      check(v);
    } catch (err) {
      if (!(err instanceof CronError)) throw err;
      ctx.addIssue({ code: "custom", message: err.message });
    }
  };
const CronText = z
  .string()
  .min(1)
  .max(200)
  .superRefine(refined(parseCron))
  .openapi({ description: "5 fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly", example: "0 3 * * *" });
const Timezone = z.string().min(1).max(64).superRefine(refined(checkTimezone)).openapi({ description: "an IANA time zone", example: "UTC" });
const Overlap = z.enum(["skip", "allow"]).openapi({ description: "skip: a tick while an earlier job of the schedule has not finished submits nothing (a `skipped` run); allow: it submits anyway" });

export const ScheduleCreate = z
  .object({
    name: ScheduleName,
    project: ProjectName.optional().openapi({ description: "the job's project; it must equal job.project when given" }),
    cron: CronText,
    timezone: Timezone.default("UTC"),
    job: JobRequest,
    overlap: Overlap.default("skip"),
  })
  .strict()
  .openapi("ScheduleCreate");
export const SchedulePatch = z
  .object({ name: ScheduleName, cron: CronText, timezone: Timezone, job: JobRequest, overlap: Overlap })
  .partial()
  .strict()
  .openapi("SchedulePatch");

const IdParams = z.object({ id: z.string().min(1).max(64).openapi({ param: { name: "id", in: "path" }, example: "sch_01jd2x7k8m9n0p1q2r3s4t5v6w" }) });
const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50).openapi({ type: "integer" }),
  cursor: z.string().max(64).optional().openapi({ description: "`next_cursor` of the previous page" }),
});
const ListQuery = PageQuery.extend({ project: ProjectName.optional().openapi({ description: "only this project's schedules; every project the caller reads, if absent" }) });
const RunsQuery = PageQuery.extend({ cursor: z.string().regex(/^\d{1,16}$/, "`next_cursor` of the previous page").optional() });

/** A schedule the caller holds `need` in; another project's reads as one that does not exist. */
async function mustGetSchedule(db: Db, principal: Principal, id: string, need: Role): Promise<ScheduleRow> {
  return mustOwn(principal, await getSchedule(db, id), need, `schedule ${id}`);
}

/** The first tick after `now`, in real time; a 400 on `cron` for an expression that never comes round. */
function firstTick(env: Env, cron: string, timezone: string, now: number): number {
  const next = tickClock(scheduleSettingsOf(env).SCHEDULE_MINUTE_S).next(parseCron(cron), timezone, now);
  if (next === null) throw new AppError("validation_failed", "cron: the expression has no tick in the coming years", "cron");
  return next;
}

/** The raw body's job: stored as the user wrote it, so each tick applies the defaults of its day. */
const rawJob = async (req: { json(): Promise<unknown> }) => ((await req.json()) as { job: JobRequestInput }).job;

/**
 * Schedules: a job template submitted on a cron expression (docs/schedules.md). Members of a
 * project manage its schedules, viewers read them; each tick's job is submitted as the user
 * who last saved the schedule, with the memberships they hold then.
 */
export const scheduleRoutes = router()
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/",
      summary: "Create a schedule",
      description: `${user.description} A member of the job's project. Each tick of \`cron\` in \`timezone\` submits \`job\` once (at most once per tick, even across restarts); ticks missed while the control plane could not run are not caught up: the next run stands for them and says so. 409 for a name the project has already or past SCHEDULE_MAX_PER_PROJECT.`,
      request: { body: body(ScheduleCreate) },
      responses: { 201: json(Schedule, "The schedule, with its first tick."), ...errors(400, 401, 403, 404, 409, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const principal = c.get("principal");
      const db = createDb(c.env.DB);
      if (req.project !== undefined && req.project !== req.job.project) {
        throw new AppError("validation_failed", `job.project: the job is in ${req.job.project}, the schedule in ${req.project}; they must be the same`, "job.project");
      }
      const project = req.job.project;
      await mustGetProject(db, principal, project, "member", "job.project");
      refuseBatchReferences(req.job, "job");
      const max = scheduleSettingsOf(c.env).SCHEDULE_MAX_PER_PROJECT;
      if ((await countSchedules(db, project)) >= max) throw new AppError("conflict", `project ${project} has ${max} schedules, the most it may (SCHEDULE_MAX_PER_PROJECT); delete one first`, "job.project");
      const now = Date.now();
      const timezone = checkTimezone(req.timezone);
      const row: ScheduleRow = {
        id: newId("sch", now),
        project,
        name: req.name,
        cron: req.cron,
        timezone,
        job: await rawJob(c.req),
        overlap: req.overlap,
        paused: false,
        nextRunAt: firstTick(c.env, req.cron, timezone, now),
        lastRunAt: null,
        submittedBy: actorName(principal),
        createdBy: actorName(principal),
        createdAt: now,
        updatedAt: now,
      };
      const saved = await insertSchedule(db, row);
      if (!saved) throw new AppError("conflict", `project ${project} has a schedule named ${req.name} already`, "name");
      await audit(c, "schedule.create", { project, target: saved.id, detail: { name: saved.name, cron: saved.cron, timezone } });
      c.executionCtx.waitUntil(pokeScheduleClock(c.env));
      return c.json(scheduleView(saved), 201);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/",
      summary: "List schedules, newest first",
      request: { query: ListQuery },
      responses: { 200: json(SchedulePage, "A page of schedules; `next_cursor` is null on the last page."), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      // Another project's name lists nothing, as an unknown one does.
      const page = await listSchedules(createDb(c.env.DB), { ...q, projects: readableProjects(c.get("principal")) });
      return c.json({ schedules: page.schedules.map(scheduleView), next_cursor: page.nextCursor }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}",
      summary: "A schedule",
      request: { params: IdParams },
      responses: { 200: json(Schedule, "The schedule."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => c.json(scheduleView(await mustGetSchedule(createDb(c.env.DB), c.get("principal"), c.req.valid("param").id, "viewer")), 200),
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "patch",
      path: "/{id}",
      summary: "Change a schedule",
      description: `${user.description} A member of its project, who becomes its submitter. A new \`cron\` or \`timezone\` sets the next tick from now; \`job.project\` must stay the schedule's.`,
      request: { params: IdParams, body: body(SchedulePatch) },
      responses: { 200: json(Schedule, "The schedule, changed."), ...errors(400, 401, 403, 404, 409, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const principal = c.get("principal");
      const db = createDb(c.env.DB);
      const schedule = await mustGetSchedule(db, principal, c.req.valid("param").id, "member");
      if (req.job && req.job.project !== schedule.project) {
        throw new AppError("validation_failed", `job.project: this schedule's jobs are in ${schedule.project}; make a new schedule for project ${req.job.project}`, "job.project");
      }
      if (req.job) refuseBatchReferences(req.job, "job");
      const now = Date.now();
      const cron = req.cron ?? schedule.cron;
      const timezone = req.timezone === undefined ? schedule.timezone : checkTimezone(req.timezone);
      const retimed = req.cron !== undefined || req.timezone !== undefined;
      const saved = await updateSchedule(db, schedule.id, {
        ...(req.name !== undefined && { name: req.name }),
        ...(req.overlap !== undefined && { overlap: req.overlap }),
        ...(req.job !== undefined && { job: await rawJob(c.req) }),
        cron,
        timezone,
        ...(retimed && !schedule.paused && { nextRunAt: firstTick(c.env, cron, timezone, now) }),
        submittedBy: actorName(principal),
        updatedAt: now,
      });
      if (saved === null) throw new AppError("conflict", `project ${schedule.project} has a schedule named ${req.name} already`, "name");
      if (!saved) throw new AppError("not_found", `no schedule ${schedule.id}`);
      await audit(c, "schedule.update", { project: saved.project, target: saved.id, detail: { fields: Object.keys(req) } });
      if (retimed) c.executionCtx.waitUntil(pokeScheduleClock(c.env));
      return c.json(scheduleView(saved), 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "delete",
      path: "/{id}",
      summary: "Delete a schedule and its runs; the jobs it submitted stay",
      request: { params: IdParams },
      responses: { 204: { description: "Deleted." }, ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const schedule = await mustGetSchedule(db, c.get("principal"), c.req.valid("param").id, "member");
      if (!(await deleteSchedule(db, schedule.id))) throw new AppError("not_found", `no schedule ${schedule.id}`);
      await audit(c, "schedule.delete", { project: schedule.project, target: schedule.id, detail: { name: schedule.name } });
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/{id}/pause",
      summary: "Pause a schedule: no tick fires until it is resumed",
      request: { params: IdParams },
      responses: { 200: json(Schedule, "The schedule, paused (pausing a paused one changes nothing)."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const schedule = await mustGetSchedule(db, c.get("principal"), c.req.valid("param").id, "member");
      if (schedule.paused) return c.json(scheduleView(schedule), 200);
      const saved = await updateSchedule(db, schedule.id, { paused: true, nextRunAt: null, updatedAt: Date.now() });
      if (!saved) throw new AppError("not_found", `no schedule ${schedule.id}`);
      await audit(c, "schedule.pause", { project: saved.project, target: saved.id });
      return c.json(scheduleView(saved), 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/{id}/resume",
      summary: "Resume a paused schedule from its next tick after now",
      description: `${user.description} Ticks that fell while it was paused are not run.`,
      request: { params: IdParams },
      responses: { 200: json(Schedule, "The schedule, with its next tick (resuming a running one changes nothing)."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const schedule = await mustGetSchedule(db, c.get("principal"), c.req.valid("param").id, "member");
      if (!schedule.paused) return c.json(scheduleView(schedule), 200);
      const now = Date.now();
      const saved = await updateSchedule(db, schedule.id, { paused: false, nextRunAt: firstTick(c.env, schedule.cron, schedule.timezone, now), updatedAt: now });
      if (!saved) throw new AppError("not_found", `no schedule ${schedule.id}`);
      await audit(c, "schedule.resume", { project: saved.project, target: saved.id });
      c.executionCtx.waitUntil(pokeScheduleClock(c.env));
      return c.json(scheduleView(saved), 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}/runs",
      summary: "A schedule's runs, newest tick first: the job each tick submitted, or why none",
      request: { params: IdParams, query: RunsQuery },
      responses: { 200: json(ScheduleRunPage, "A page of runs; `next_cursor` is null on the last page."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const schedule = await mustGetSchedule(db, c.get("principal"), c.req.valid("param").id, "viewer");
      const q = c.req.valid("query");
      const page = await listRuns(db, schedule.id, { limit: q.limit, cursor: q.cursor === undefined ? undefined : Number(q.cursor) });
      return c.json({ runs: page.runs.map(scheduleRunView), next_cursor: page.nextCursor }, 200);
    },
  );
