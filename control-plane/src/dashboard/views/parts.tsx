/** @jsxImportSource hono/jsx */
import type { Child, FC, PropsWithChildren } from "hono/jsx";
import type { Standing } from "../../auth/roles.ts";
import type { Session } from "../session.ts";

export type NavPage = "overview" | "jobs" | "run" | "schedules" | "workers" | "projects" | "sessions" | AdminPage;
/** Pages for the admin only; the navigation shows them to nobody else. */
export type AdminPage = "onboarding" | "tokens" | "audit" | "probes" | "datasets" | "pools";

const NAV: { page: NavPage; href: string; label: string; admin?: true }[] = [
  { page: "overview", href: "/ui", label: "Overview" },
  { page: "jobs", href: "/ui/jobs", label: "Jobs" },
  { page: "run", href: "/ui/run", label: "Run Python" },
  { page: "schedules", href: "/ui/schedules", label: "Schedules" },
  { page: "workers", href: "/ui/workers", label: "Workers" },
  { page: "projects", href: "/ui/projects", label: "Projects" },
  { page: "sessions", href: "/ui/sessions", label: "Sessions" },
  { page: "onboarding", href: "/ui/onboarding", label: "Add a worker", admin: true },
  { page: "tokens", href: "/ui/tokens", label: "Tokens", admin: true },
  { page: "audit", href: "/ui/audit", label: "Audit", admin: true },
  { page: "probes", href: "/ui/probes", label: "Probes", admin: true },
  { page: "datasets", href: "/ui/datasets", label: "Datasets", admin: true },
  { page: "pools", href: "/ui/pools", label: "Pools", admin: true },
];

/** A project the viewer may switch to, with their standing in it. */
export interface ProjectChoice {
  name: string;
  role: Standing;
}

/** Who is looking, the projects they can switch between, and the one chosen (none: all of them). */
export interface Viewer {
  session: Session;
  projects: ProjectChoice[];
  project: string | undefined;
}

export const viewerName = (session: Session) => (session.principal.kind === "admin" ? "admin" : session.principal.name);

/** Messages a redirect after a successful action may show (by code, so a link cannot inject text). */
export const DONE_MESSAGES = {
  canceled: "Cancel requested: the job is canceled and its container stopped.",
  rerun: "Rerun submitted: this is the new job.",
  array_canceled: "Array canceled: its unfinished tasks are canceled; finished ones keep their outcome.",
  drained: "Worker drained: it takes no new jobs; running ones finish.",
  undrained: "Worker undrained: it takes jobs again.",
  member_saved: "Member saved.",
  member_removed: "Member removed.",
  secret_saved: "Secret saved. Its value is not shown again.",
  secret_deleted: "Secret deleted.",
  session_revoked: "Session signed out: the browser holding it has to sign in again.",
  token_revoked: "Token revoked: requests with it are refused, and agents connected with it are disconnected.",
  sandbox_saved: "Sandbox policy saved: it applies to jobs submitted from now on.",
  probe_done: "Probe finished: its outcome is first in the list.",
} as const;
export type DoneCode = keyof typeof DONE_MESSAGES;

export interface Flash {
  done?: DoneCode | undefined;
  error?: string | undefined;
}

/** The switcher submits to the page it is on (a job's page: the job list), which shows the chosen project. */
const switchTarget = (current: NavPage | undefined) => NAV.find((n) => n.page === current)?.href ?? "/ui/jobs";

const ProjectSwitcher: FC<{ viewer: Viewer; current?: NavPage | undefined }> = ({ viewer, current }) => (
  <form method="get" action={switchTarget(current)} class="switcher" aria-label="Switch project">
    <label for="project-switch">Project</label>
    <select id="project-switch" name="project">
      <option value="" selected={!viewer.project}>
        All projects
      </option>
      {viewer.projects.map((p) => (
        <option value={p.name} selected={p.name === viewer.project}>
          {p.role ? `${p.name} (${p.role})` : p.name}
        </option>
      ))}
    </select>
    <button type="submit">Switch</button>
  </form>
);

/** The page frame: skip link, navigation, the project switcher, who is signed in, and the sign-out button. */
export const Layout: FC<PropsWithChildren<{ title: string; viewer?: Viewer | undefined; current?: NavPage; flash?: Flash | undefined }>> = ({ title, viewer, current, flash, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{`${title} · gridx`}</title>
      <link rel="stylesheet" href="/ui/assets/app.css" />
      <script src="/ui/assets/app.js" defer></script>
    </head>
    <body>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/ui">
          gridx
        </a>
        {viewer && (
          <nav aria-label="Main">
            <ul>
              {NAV.filter((n) => !n.admin || viewer.session.principal.kind === "admin").map((n) => (
                <li>
                  <a href={n.href} aria-current={n.page === current ? "page" : undefined}>
                    {n.label}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        )}
        {viewer && viewer.projects.length > 0 && <ProjectSwitcher viewer={viewer} current={current} />}
        {viewer && (
          <form method="post" action="/ui/logout" class="signout">
            <span class="who">{viewerName(viewer.session)}</span>
            <button type="submit">Log out</button>
          </form>
        )}
      </header>
      <main id="main">
        {flash?.done && (
          <p class="notice" role="status">
            {DONE_MESSAGES[flash.done]}
          </p>
        )}
        {flash?.error && (
          <p class="error" role="alert">
            {flash.error}
          </p>
        )}
        {children}
      </main>
    </body>
  </html>
);

export const StatusBadge: FC<{ status: string }> = ({ status }) => <span class={`badge s-${status}`}>{status}</span>;

/** `2026-11-22 10:15:03 UTC`; the page script rewrites it in the reader's time zone. */
export function formatTime(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

export const Time: FC<{ iso: string | null }> = ({ iso }) =>
  iso ? (
    <time datetime={iso} data-local="">
      {formatTime(iso)}
    </time>
  ) : (
    <span class="muted">—</span>
  );

/** A short human duration: 850 ms, 12.3 s, 4 min 5 s, 2 h 3 min, 3 d 4 h. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const both = (n: number, unit: string, rest: number, restUnit: string) => (rest ? `${n} ${unit} ${rest} ${restUnit}` : `${n} ${unit}`);
  const m = Math.floor(s / 60);
  if (m < 60) return both(m, "min", Math.floor(s % 60), "s");
  const h = Math.floor(m / 60);
  if (h < 48) return both(h, "h", m % 60, "min");
  return both(Math.floor(h / 24), "d", h % 24, "h");
}

export const between = (from: string | null, to: string | null) => (from && to ? Date.parse(to) - Date.parse(from) : null);

/** `4 s ago`, relative to the moment the page was rendered. */
export const Ago: FC<{ iso: string | null; now: number }> = ({ iso, now }) =>
  iso ? (
    <time datetime={iso} title={formatTime(iso)}>
      {`${formatDuration(Math.max(0, now - Date.parse(iso)))} ago`}
    </time>
  ) : (
    <span class="muted">—</span>
  );

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export const formatMemoryMb = (mb: number) => formatBytes(mb * 1024 * 1024);

/**
 * A region the page script keeps fresh: it fetches `src` every `every` ms, or, with `events`
 * (an event stream's address), whenever that stream says something changed, and swaps in the
 * answer's children. A region rendered without `src` (a finished job) stays as it is.
 */
export const LiveRegion: FC<PropsWithChildren<{ src: string | null; every: number; events?: string; id?: string; class?: string }>> = (p) => (
  <div id={p.id} class={p.class} data-live={p.src ?? undefined} data-every={p.src ? String(p.every) : undefined} data-events={p.src ? p.events : undefined}>
    {p.children}
  </div>
);

export const EmptyState: FC<{ children: Child }> = ({ children }) => <p class="empty">{children}</p>;

/** A table row's one destructive action: a form posting to `action`, its button naming the row for screen readers. */
export const RowAction: FC<{ action: string; label: string; what: string }> = ({ action, label, what }) => (
  <td data-label="Action">
    <form method="post" action={action}>
      <button type="submit" class="danger">
        {label} <span class="sr-only">{what}</span>
      </button>
    </form>
  </td>
);

/** The `/ui/...` link to a path inside the dashboard with a query, dropping empty values. */
export function uiHref(path: string, query: Record<string, string | undefined>): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) params.set(k, v);
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}
