/** @jsxImportSource hono/jsx */
import type { FC } from "hono/jsx";
import { Ago, EmptyState, Layout, RowAction, Time, type Flash, type Viewer } from "./parts.tsx";
import type { DashboardSession } from "./types.ts";

/** The viewer's dashboard sessions (the admin: everyone's), each with a button that ends it. */
export const SessionsPage: FC<{ viewer: Viewer; sessions: DashboardSession[]; now: number; flash?: Flash }> = ({ viewer, sessions, now, flash }) => (
  <Layout title="Sessions" viewer={viewer} current="sessions" flash={flash}>
    <h1>Sessions</h1>
    <p class="hint">Every browser signed in {viewer.session.principal.kind === "admin" ? "to gridx" : "as you"}. Signing one out ends it at once.</p>
    {sessions.length === 0 ? (
      <EmptyState>No sessions.</EmptyState>
    ) : (
      <table class="grid sessions">
        <caption class="sr-only">Dashboard sessions, newest first</caption>
        <thead>
          <tr>
            <th scope="col">User</th>
            <th scope="col">Browser</th>
            <th scope="col">From</th>
            <th scope="col">Signed in</th>
            <th scope="col">Last used</th>
            <th scope="col">Expires</th>
            <th scope="col">Action</th>
          </tr>
        </thead>
        <tbody>
          {sessions.map((s) => (
            <tr data-session={s.id}>
              <td data-label="User">
                {s.user}
                {s.current && <small class="muted block">this browser</small>}
              </td>
              <td data-label="Browser">{s.user_agent ?? <span class="muted">—</span>}</td>
              <td data-label="From">{s.ip ?? <span class="muted">—</span>}</td>
              <td data-label="Signed in">
                <Time iso={s.created_at} />
              </td>
              <td data-label="Last used">
                <Ago iso={s.last_used_at} now={now} />
              </td>
              <td data-label="Expires">
                <Time iso={s.expires_at} />
              </td>
              <RowAction action={`/ui/sessions/${encodeURIComponent(s.id)}/revoke`} label="Sign out" what={s.current ? "this browser" : `session ${s.id}`} />
            </tr>
          ))}
        </tbody>
      </table>
    )}
  </Layout>
);
