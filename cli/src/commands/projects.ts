import { decimal } from "../args.ts";
import type { ApiClient } from "../api.ts";
import { command } from "../cli.ts";
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { ago, bytes, keyValues, ofLimit, table } from "../format.ts";
import { mergeQuotas, QUOTA_FIELDS, QUOTA_FLAGS, QUOTA_FLAGS_HELP, quotaChanges } from "../project-request.ts";

const ROLES = ["owner", "member", "viewer"] as const;
const notFound = "see your projects with `gridx projects`";
const ownerOnly = "ask an owner of the project (gridx members ls PROJECT), or the admin";
const quotaRules = "an owner (gridx members ls PROJECT) may add or lower the project's quotas; raising or removing one, and the weight, are the admin's";

type Project = Awaited<ReturnType<typeof getProject>>;

function getProject(api: ApiClient, project: string) {
  return api.json(api.rpc.v1.projects[":project"].$get({ param: { project } }), { notFound });
}

/** A project's usage against its quotas, one cell each, as `gridx projects` shows them. */
export function usageCells(p: Pick<Project, "quotas" | "usage">): string[] {
  const { quotas: q, usage: u } = p;
  return [ofLimit(u.running_jobs, q.max_running_jobs), ofLimit(u.queued_jobs, q.max_queued_jobs), ofLimit(u.gpus, q.max_gpus), ofLimit(u.dataset_bytes, q.max_dataset_bytes, bytes)];
}

function projectText(p: Project): string {
  const line = (used: string, limit: number | undefined) => `${used}${limit === undefined ? "  (no quota)" : ""}`;
  const [running, queued, gpus, datasets] = usageCells(p);
  return keyValues([
    ["project", p.name],
    ["your role", p.role ?? "-"],
    ["weight", String(p.weight)],
    ["created", `${ago(p.created_at)} (${p.created_at})`],
    ["running jobs", line(running!, p.quotas.max_running_jobs)],
    ["queued jobs", line(queued!, p.quotas.max_queued_jobs)],
    ["gpus in use", line(gpus!, p.quotas.max_gpus)],
    ["datasets", line(datasets!, p.quotas.max_dataset_bytes)],
  ]);
}

/** The one argument of a command that takes a project. */
function projectArg(name: string, positionals: string[], usage: string): string {
  const [project] = positionals;
  if (!project || positionals.length > 1) throw new UsageError(`give one project: gridx ${name} ${usage}`);
  return project;
}

export const projectsList = command({
  name: "projects",
  group: "Projects",
  summary: "list your projects (every project, for the admin): your role, quotas, usage",
  usage: ["projects"],
  options: {},
  optionsHelp: "",
  notes: "Usage is shown as N/M where the project has a quota M, and as N where it has none.",
  examples: ["gridx projects", "gridx projects --json | jq -r '.projects[] | select(.role == \"owner\") | .name'"],
  async run({ positionals }, ctx) {
    if (positionals.length) throw new UsageError(`\`gridx projects\` takes no arguments (got ${positionals.join(" ")}); see also gridx projects show, create and set`);
    const api = ctx.api();
    const body = await api.json(api.rpc.v1.projects.$get());
    const rows = body.projects.map((p) => [p.name, p.role ?? "-", ...usageCells(p), String(p.weight)]);
    ctx.print(rows.length ? table(["NAME", "ROLE", "RUNNING", "QUEUED", "GPUS", "DATASETS", "WEIGHT"], rows) : "no projects: ask a project's owner to add you (gridx members add)", body);
    return EXIT.ok;
  },
});

export const projectsShow = command({
  name: "projects show",
  group: "Projects",
  summary: "show a project: your role, its weight, quotas and current usage",
  usage: ["projects show PROJECT"],
  options: {},
  optionsHelp: "",
  examples: ["gridx projects show lab", "gridx projects show lab --json | jq .usage"],
  async run({ positionals }, ctx) {
    const p = await getProject(ctx.api(), projectArg("projects show", positionals, "PROJECT"));
    ctx.print(projectText(p), p);
    return EXIT.ok;
  },
});

export const projectsCreate = command({
  name: "projects create",
  group: "Projects",
  summary: "create a project, with quotas and a weight; admin",
  usage: ["projects create PROJECT [--max-running N] [--max-queued N] [--max-gpus N] [--max-dataset-bytes SIZE] [--weight W]"],
  options: QUOTA_FLAGS,
  optionsHelp: QUOTA_FLAGS_HELP,
  notes: "A quota left out is no limit. The project starts with no members: add them with `gridx members add`.",
  examples: ["gridx projects create lab", "gridx projects create lab --max-running 8 --max-gpus 4 --max-dataset-bytes 500g --weight 2"],
  async run({ values, positionals }, ctx) {
    const name = projectArg("projects create", positionals, "PROJECT [options]");
    const quotas = mergeQuotas({}, quotaChanges(values));
    const weight = values.weight === undefined ? undefined : decimal("--weight", values.weight);
    const api = ctx.api();
    const p = await api.json(api.rpc.v1.projects.$post({ json: { name, quotas, ...(weight === undefined ? {} : { weight }) } }), {
      forbidden: "creating projects needs the admin token",
      fields: [["name", "PROJECT"], ...QUOTA_FIELDS],
    });
    ctx.print(projectText(p), p);
    ctx.note(`[gridx: project ${p.name} created; add its members with: gridx members add ${p.name} USER --role owner]`);
    return EXIT.ok;
  },
});

export const projectsSet = command({
  name: "projects set",
  group: "Projects",
  summary: "change a project's quotas (owners lower them, the admin sets them) or weight (admin)",
  usage: ["projects set PROJECT [--max-running N|none] [--max-queued N|none] [--max-gpus N|none] [--max-dataset-bytes SIZE|none] [--weight W]"],
  options: QUOTA_FLAGS,
  optionsHelp: QUOTA_FLAGS_HELP,
  notes: `A quota flag sets that quota, \`none\` removes it; the quotas not named stay as they are.
An owner may add a quota or lower one; raising or removing one is the admin's.
The API replaces a project's quotas as a whole, so this reads the current ones first and sends
them back with the changes: a change someone else makes in between is overwritten.`,
  examples: ["gridx projects set lab --max-running 16", "gridx projects set lab --max-gpus none --max-queued 1000", "gridx projects set lab --weight 3   # admin"],
  async run({ values, positionals }, ctx) {
    const project = projectArg("projects set", positionals, "PROJECT --max-running N ...");
    const changes = quotaChanges(values);
    const weight = values.weight === undefined ? undefined : decimal("--weight", values.weight);
    if (!Object.keys(changes).length && weight === undefined) throw new UsageError("say what to change: --max-running, --max-queued, --max-gpus, --max-dataset-bytes or --weight");
    const api = ctx.api();
    const quotas = Object.keys(changes).length ? mergeQuotas((await getProject(api, project)).quotas, changes) : undefined;
    const p = await api.json(
      api.rpc.v1.projects[":project"].$patch({ param: { project }, json: { ...(quotas ? { quotas } : {}), ...(weight === undefined ? {} : { weight }) } }),
      { notFound, forbidden: quotaRules, fields: QUOTA_FIELDS },
    );
    ctx.print(projectText(p), p);
    return EXIT.ok;
  },
});

export const membersLs = command({
  name: "members ls",
  group: "Projects",
  summary: "list a project's members and their roles",
  usage: ["members ls PROJECT"],
  options: {},
  optionsHelp: "",
  examples: ["gridx members ls lab", "gridx members ls lab --json | jq -r '.members[] | select(.role == \"owner\") | .user'"],
  async run({ positionals }, ctx) {
    const project = projectArg("members ls", positionals, "PROJECT");
    const api = ctx.api();
    const body = await api.json(api.rpc.v1.projects[":project"].members.$get({ param: { project } }), { notFound });
    const now = Date.now();
    const rows = body.members.map((m) => [m.user, m.role, ago(m.added_at, now), m.user_id]);
    ctx.print(rows.length ? table(["USER", "ROLE", "ADDED", "ID"], rows) : `project ${project} has no members`, body);
    return EXIT.ok;
  },
});

export const membersAdd = command({
  name: "members add",
  group: "Projects",
  summary: "add a user to a project, or change its role; owner",
  usage: ["members add PROJECT USER --role owner|member|viewer"],
  options: { role: { type: "string" } },
  optionsHelp: "  --role ROLE                  owner, member or viewer (required)",
  notes: `Roles: owner manages members and secrets (and changes quotas); member submits, cancels,
uploads and reads everything in the project; viewer reads only. USER is a user's name or id.`,
  examples: ["gridx members add lab ada --role member", "gridx members add lab grace --role owner"],
  async run({ values, positionals }, ctx) {
    const [project, user] = positionals;
    if (!project || !user || positionals.length > 2) throw new UsageError("give the project and the user: gridx members add PROJECT USER --role ROLE");
    const role = ROLES.find((r) => r === values.role);
    if (!role) throw new UsageError(`${values.role === undefined ? "give the role" : `there is no role "${values.role}"`}: --role ${ROLES.join(", ")}`);
    const api = ctx.api();
    const body = await api.json(api.rpc.v1.projects[":project"].members[":user"].$put({ param: { project, user }, json: { role } }), {
      notFound: "see `gridx projects`, and ask the admin for the user's name (gridx users ls)",
      forbidden: ownerOnly,
    });
    ctx.print(`${user} is ${role} of ${project}`, body);
    return EXIT.ok;
  },
});

export const membersRm = command({
  name: "members rm",
  group: "Projects",
  summary: "remove a user from a project; owner",
  usage: ["members rm PROJECT USER"],
  options: {},
  optionsHelp: "",
  notes: "The user's jobs and datasets stay in the project; its tokens stay valid for its other projects.",
  examples: ["gridx members rm lab ada"],
  async run({ positionals }, ctx) {
    const [project, user] = positionals;
    if (!project || !user || positionals.length > 2) throw new UsageError("give the project and the user: gridx members rm PROJECT USER");
    const api = ctx.api();
    await api.ok(api.rpc.v1.projects[":project"].members[":user"].$delete({ param: { project, user } }), { notFound: `see \`gridx members ls ${project}\``, forbidden: ownerOnly });
    ctx.print(`${user} removed from ${project}`, { project, user, removed: true });
    return EXIT.ok;
  },
});

export const projectCommands = [projectsList, projectsShow, projectsCreate, projectsSet, membersLs, membersAdd, membersRm];
