import { createRoute, z } from "@hono/zod-openapi";
import { ProjectName } from "../../../protocol/index.ts";
import { readableProjects } from "../auth/access.ts";
import { createDb } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { eventHubOf } from "../events/hub.ts";
import { bearerOf } from "../middleware/auth.ts";
import { errors, access, router } from "../openapi.ts";
import { relay } from "../streams/relay.ts";
import { mustGetJob, mustGetProject } from "./guards.ts";
import { FOLLOW_REAUTH_MS, stillReads } from "./jobs.ts";

const EventsQuery = z.object({
  project: ProjectName.optional().openapi({ description: "this project's events; optional when the caller reads only one project, or names a job" }),
  job: z.string().max(64).optional().openapi({ description: "only this job's events" }),
  after: z.string().regex(/^\d{1,15}$/, "an event id").optional().openapi({ description: "only events after this id; `Last-Event-ID` works too" }),
});

const user = access("admin", "user");

/** `GET /v1/events`: a project's (or one job's) status changes as server-sent events, pushed as they commit. */
export const eventRoutes = router().openapi(
  createRoute({
    ...user,
    tags: ["jobs"],
    method: "get",
    path: "/",
    summary: "Job state changes as a live stream (server-sent events)",
    description:
      `${user.description} One \`job\` event per change of a job's status (\`queued\`, \`assigned\`, \`running\`, \`completed\`, \`failed\`, \`canceled\`; a requeue is \`queued\` again), in commit order; \`id\` is the event's id and \`data\` a JobEvent. ` +
      "Resume with `Last-Event-ID` or `after`: every change once, in order. A quiet stream sends a comment every FOLLOW_KEEPALIVE_S; after FOLLOW_MAX_S it sends `resume` (data: `{after}`) and closes. The token and its membership are checked again every 30 s; if either is gone, one `error` event ends the stream.",
    request: { query: EventsQuery },
    responses: {
      200: { description: "server-sent events: job | resume | error", content: { "text/event-stream": { schema: z.string().openapi({ description: "event: job | resume | error" }) } } },
      ...errors(400, 401, 403, 404),
    },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const db = createDb(c.env.DB);
    const principal = c.get("principal");
    let project = q.project;
    if (q.job) {
      const job = await mustGetJob(db, principal, q.job);
      if (project && project !== job.project) throw new AppError("validation_failed", `project: job ${job.id} is in project ${job.project}`, "project");
      project = job.project;
    } else if (project) {
      await mustGetProject(db, principal, project, "viewer", "project");
    } else {
      const readable = readableProjects(principal);
      if (readable === null || readable.length !== 1) throw new AppError("validation_failed", "project: required unless the caller reads exactly one project or names a job", "project");
      project = readable[0]!;
    }
    // A reconnecting EventSource sends Last-Event-ID and repeats its first URL: the header is newer.
    const after = c.req.header("last-event-id") ?? q.after;
    if (after !== undefined && !/^\d{1,15}$/.test(after)) throw new AppError("validation_failed", "after: an event id (Last-Event-ID too)", "after");
    const follow = new URL("https://event-hub/follow");
    follow.searchParams.set("project", project);
    if (q.job) follow.searchParams.set("job", q.job);
    if (after) follow.searchParams.set("after", after);
    const upstream = await eventHubOf(c.env, project).fetch(follow.toString());
    const readsProject = project;
    return relay(upstream, () => stillReads(db, c.env, bearerOf(c) ?? undefined, principal, readsProject), FOLLOW_REAUTH_MS);
  },
);
