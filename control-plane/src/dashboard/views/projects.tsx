/** @jsxImportSource hono/jsx */
import type { FC } from "hono/jsx";
import { ROLES } from "../../auth/roles.ts";
import { EmptyState, formatBytes, Layout, RowAction, Time, uiHref, type Flash, type ProjectChoice, type Viewer } from "./parts.tsx";
import type { Member, Project, Secret } from "./types.ts";

const enc = encodeURIComponent;
export const projectHref = (name: string) => `/ui/projects/${enc(name)}`;

/** Whether a standing manages a project's members and secrets. */
export const manages = (role: Project["role"]) => role === "owner" || role === "admin";

export const ProjectsPage: FC<{ viewer: Viewer; projects: ProjectChoice[] }> = ({ viewer, projects }) => (
  <Layout title="Projects" viewer={viewer} current="projects">
    <h1>Projects</h1>
    {projects.length === 0 ? (
      <EmptyState>You are not a member of any project yet; a project's owner or the admin adds you.</EmptyState>
    ) : (
      <ul class="project-list">
        {projects.map((p) => (
          <li>
            <a href={projectHref(p.name)}>{p.name}</a> <span class="muted">{p.role}</span>
          </li>
        ))}
      </ul>
    )}
  </Layout>
);

const QUOTA_ROWS = [
  { label: "Running jobs", quota: "max_running_jobs", usage: "running_jobs", bytes: false },
  { label: "Queued jobs", quota: "max_queued_jobs", usage: "queued_jobs", bytes: false },
  { label: "GPUs in use", quota: "max_gpus", usage: "gpus", bytes: false },
  { label: "Dataset storage", quota: "max_dataset_bytes", usage: "dataset_bytes", bytes: true },
] as const;

const Quotas: FC<{ project: Project }> = ({ project }) => (
  <table class="grid quotas">
    <caption class="sr-only">Quotas and usage of project {project.name}</caption>
    <thead>
      <tr>
        <th scope="col">What</th>
        <th scope="col">In use</th>
        <th scope="col">Quota</th>
      </tr>
    </thead>
    <tbody>
      {QUOTA_ROWS.map((r) => {
        const limit = project.quotas[r.quota];
        const show = (n: number) => (r.bytes ? formatBytes(n) : String(n));
        return (
          <tr>
            <td data-label="What">{r.label}</td>
            <td data-label="In use">{show(project.usage[r.usage])}</td>
            <td data-label="Quota">{limit === undefined ? <span class="muted">no limit</span> : show(limit)}</td>
          </tr>
        );
      })}
    </tbody>
  </table>
);

const RoleSelect: FC<{ id: string; selected?: string }> = ({ id, selected }) => (
  <select id={id} name="role" required>
    {ROLES.map((r) => (
      <option value={r} selected={r === (selected ?? "member")}>
        {r}
      </option>
    ))}
  </select>
);

const Members: FC<{ project: string; members: Member[]; manage: boolean }> = ({ project, members, manage }) => (
  <>
    {members.length === 0 ? (
      <EmptyState>No members yet.</EmptyState>
    ) : (
      <table class="grid members">
        <caption class="sr-only">Members of {project}</caption>
        <thead>
          <tr>
            <th scope="col">User</th>
            <th scope="col">Role</th>
            <th scope="col">Added</th>
            {manage && <th scope="col">Action</th>}
          </tr>
        </thead>
        <tbody>
          {members.map((m) => (
            <tr data-member={m.user}>
              <td data-label="User">{m.user}</td>
              <td data-label="Role">{m.role}</td>
              <td data-label="Added">
                <Time iso={m.added_at} />
              </td>
              {manage && <RowAction action={`${projectHref(project)}/members/${enc(m.user)}/remove`} label="Remove" what={m.user} />}
            </tr>
          ))}
        </tbody>
      </table>
    )}
    {manage && (
      <form method="post" action={`${projectHref(project)}/members`} class="inline" id="member-form" aria-label="Add a member or change a role">
        <label for="member-user">User</label>
        <input id="member-user" name="user" required maxlength={100} placeholder="name or id" />
        <label for="member-role">Role</label>
        <RoleSelect id="member-role" />
        <button type="submit" class="primary">
          Add or change
        </button>
      </form>
    )}
  </>
);

const Secrets: FC<{ project: string; secrets: Secret[]; manage: boolean }> = ({ project, secrets, manage }) => (
  <>
    <p class="hint">Values are encrypted and never shown; jobs of this project use them by name.</p>
    {secrets.length === 0 ? (
      <EmptyState>No secrets.</EmptyState>
    ) : (
      <table class="grid secrets">
        <caption class="sr-only">Secrets of {project}</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Updated</th>
            {manage && <th scope="col">Action</th>}
          </tr>
        </thead>
        <tbody>
          {secrets.map((s) => (
            <tr>
              <td data-label="Name">
                <code>{s.name}</code>
              </td>
              <td data-label="Updated">
                <Time iso={s.updated_at} />
              </td>
              {manage && <RowAction action={`${projectHref(project)}/secrets/${enc(s.name)}/delete`} label="Delete" what={s.name} />}
            </tr>
          ))}
        </tbody>
      </table>
    )}
    {manage && (
      <form method="post" action={`${projectHref(project)}/secrets`} class="inline" id="secret-form" aria-label="Store a secret">
        <label for="secret-name">Name</label>
        <input id="secret-name" name="name" required maxlength={100} spellcheck={false} />
        <label for="secret-value">Value</label>
        <input id="secret-value" name="value" type="password" required autocomplete="off" spellcheck={false} />
        <button type="submit" class="primary">
          Save secret
        </button>
      </form>
    )}
  </>
);

/** A project: quotas and usage; members and secrets, which owners (and the admin) manage here. */
export const ProjectPage: FC<{ viewer: Viewer; project: Project; members: Member[]; secrets: Secret[]; flash?: Flash }> = ({ viewer, project, members, secrets, flash }) => {
  const manage = manages(project.role);
  return (
    <Layout title={`Project ${project.name}`} viewer={viewer} current="projects" flash={flash}>
      <p class="crumbs">
        <a href="/ui/projects">Projects</a> /
      </p>
      <h1>
        Project {project.name} <span class="subtitle">you are {project.role === "admin" ? "the admin" : project.role === "owner" ? "an owner" : `a ${project.role}`}</span>
      </h1>
      <p>
        <a href={uiHref("/ui/jobs", { project: project.name })}>Jobs of {project.name}</a>
      </p>
      <div class="columns">
        <section class="card" aria-labelledby="quotas-title">
          <h2 id="quotas-title">Quotas and usage</h2>
          <Quotas project={project} />
          <p class="hint">Fair-share weight {project.weight}.</p>
        </section>
        <div>
          <section class="card" aria-labelledby="members-title">
            <h2 id="members-title">Members</h2>
            <Members project={project.name} members={members} manage={manage} />
          </section>
          <section class="card" aria-labelledby="secrets-title">
            <h2 id="secrets-title">Secrets</h2>
            <Secrets project={project.name} secrets={secrets} manage={manage} />
          </section>
        </div>
      </div>
    </Layout>
  );
};
