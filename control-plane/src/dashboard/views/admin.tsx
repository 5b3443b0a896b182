/** @jsxImportSource hono/jsx */
import type { FC } from "hono/jsx";
import { BuildNetwork, Runtime } from "../../../../protocol/index.ts";
import { AUDIT_ACTIONS } from "../../audit.ts";
import { Ago, EmptyState, formatBytes, Layout, LiveRegion, RowAction, StatusBadge, Time, uiHref, type Flash, type Viewer } from "./parts.tsx";
import type { AuditEvent, Dataset, PoolSandboxView, PoolSummary, Probe, TokenInfo, Worker } from "./types.ts";

const enc = encodeURIComponent;
const Dash = () => <span class="muted">—</span>;

/** An "older" link to the next page, where there is one. */
const Pager: FC<{ path: string; query: Record<string, string | undefined>; next: string | null }> = ({ path, query, next }) =>
  next ? (
    <p class="pager">
      <a href={uiHref(path, { ...query, cursor: next })} rel="next">
        Older →
      </a>
    </p>
  ) : null;

export const TokensPage: FC<{ viewer: Viewer; tokens: TokenInfo[]; now: number; flash?: Flash }> = ({ viewer, tokens, now, flash }) => (
  <Layout title="Tokens" viewer={viewer} current="tokens" flash={flash}>
    <h1>Tokens</h1>
    <p class="hint">
      Agent and API tokens that are not revoked, newest first; their text is never shown again. Revoking one refuses its next request; agents connected with it are disconnected.{" "}
      <a href="/ui/onboarding">Issue an agent token</a>
    </p>
    {tokens.length === 0 ? (
      <EmptyState>No tokens.</EmptyState>
    ) : (
      <table class="grid tokens">
        <caption class="sr-only">Tokens, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Token</th>
            <th scope="col">Kind</th>
            <th scope="col">Pool or user</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">Expires</th>
            <th scope="col">Action</th>
          </tr>
        </thead>
        <tbody>
          {tokens.map((t) => (
            <tr data-token={t.id}>
              <td data-label="Token">
                <strong>{t.name}</strong>
                <small class="muted block">
                  <code>{t.id}</code>
                </small>
              </td>
              <td data-label="Kind">{t.kind === "agent" ? "agent" : "API"}</td>
              <td data-label="Pool or user">{t.kind === "agent" ? `pool ${t.pool}` : `user ${t.user ?? t.user_id}`}</td>
              <td data-label="Created">
                <Time iso={t.created_at} />
              </td>
              <td data-label="Last used">{t.last_used_at ? <Ago iso={t.last_used_at} now={now} /> : <span class="muted">never</span>}</td>
              <td data-label="Expires">{t.expires_at ? <Time iso={t.expires_at} /> : <span class="muted">never</span>}</td>
              <RowAction action={`/ui/tokens/${t.kind}/${enc(t.id)}/revoke`} label="Revoke" what={`${t.kind} token ${t.name}`} />
            </tr>
          ))}
        </tbody>
      </table>
    )}
  </Layout>
);

export interface AuditFilter {
  action: string | undefined;
  project: string | undefined;
  actor: string | undefined;
  /** Events a page; the API's default when absent. */
  limit?: string | undefined;
}

export const AuditLogPage: FC<{ viewer: Viewer; events: AuditEvent[]; next: string | null; filter: AuditFilter }> = ({ viewer, events, next, filter }) => (
  <Layout title="Audit log" viewer={viewer} current="audit">
    <h1>Audit log</h1>
    <form method="get" action="/ui/audit" class="inline" role="search" aria-label="Filter the audit log">
      <label for="audit-action">Action</label>
      <select id="audit-action" name="action">
        <option value="" selected={!filter.action}>
          any
        </option>
        {AUDIT_ACTIONS.map((a) => (
          <option value={a} selected={a === filter.action}>
            {a}
          </option>
        ))}
      </select>
      <label for="audit-project">Project</label>
      <select id="audit-project" name="project">
        <option value="" selected={!filter.project}>
          any
        </option>
        {viewer.projects.map((p) => (
          <option value={p.name} selected={p.name === filter.project}>
            {p.name}
          </option>
        ))}
      </select>
      <label for="audit-actor">Actor</label>
      <input id="audit-actor" name="actor" value={filter.actor ?? ""} placeholder="user, admin or token id" />
      <button type="submit">Filter</button>
    </form>
    {events.length === 0 ? (
      <EmptyState>No events{filter.action || filter.project || filter.actor ? " match" : ""}.</EmptyState>
    ) : (
      <table class="grid audit">
        <caption class="sr-only">Audit events, newest first</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Actor</th>
            <th scope="col">Action</th>
            <th scope="col">Project</th>
            <th scope="col">Target</th>
            <th scope="col">Detail</th>
            <th scope="col">From</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr data-event={e.id}>
              <td data-label="When" class="nowrap">
                <Time iso={e.at} />
              </td>
              <td data-label="Actor">{e.actor}</td>
              <td data-label="Action">
                <code>{e.action}</code>
              </td>
              <td data-label="Project">{e.project ?? <Dash />}</td>
              <td data-label="Target">{e.target ? <code>{e.target}</code> : <Dash />}</td>
              <td data-label="Detail">
                <code class="hash">{JSON.stringify(e.detail)}</code>
              </td>
              <td data-label="From">{e.ip ?? <Dash />}</td>
            </tr>
          ))}
        </tbody>
      </table>
    )}
    <Pager path="/ui/audit" query={{ ...filter }} next={next} />
  </Layout>
);

/** How often a worker's probe list refreshes while a probe is pending. */
export const PROBES_REFRESH_MS = 2000;

export const ProbeTable: FC<{ worker: string; probes: Probe[] }> = ({ worker, probes }) => (
  <LiveRegion src={probes.some((p) => p.status === "pending") ? uiHref("/ui/live/probes", { worker }) : null} every={PROBES_REFRESH_MS} id="probes-live">
    {probes.length === 0 ? (
      <EmptyState>No probes on this worker yet.</EmptyState>
    ) : (
      <table class="grid probes">
        <caption class="sr-only">Probes of worker {worker}, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Command</th>
            <th scope="col">Status</th>
            <th scope="col">Exit</th>
            <th scope="col">Output</th>
            <th scope="col">By</th>
            <th scope="col">Asked</th>
          </tr>
        </thead>
        <tbody>
          {probes.map((p) => (
            <tr data-probe={p.id}>
              <td data-label="Command">
                <code>{p.command}</code>
              </td>
              <td data-label="Status">
                <span class={`badge s-${p.status === "completed" ? "completed" : p.status === "pending" ? "running" : "failed"}`}>{p.status}</span>
              </td>
              <td data-label="Exit">{p.exit_code ?? <Dash />}</td>
              <td data-label="Output">
                {p.output !== null ? <pre class="code">{p.output + (p.truncated ? "\n(truncated)" : "")}</pre> : p.error ?? <Dash />}
              </td>
              <td data-label="By">{p.requested_by}</td>
              <td data-label="Asked" class="nowrap">
                <Time iso={p.created_at} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    )}
  </LiveRegion>
);

export const ProbesPage: FC<{ viewer: Viewer; workers: Worker[]; chosen: Worker | undefined; probes: Probe[]; flash?: Flash }> = ({ viewer, workers, chosen, probes, flash }) => (
  <Layout title="Probes" viewer={viewer} current="probes" flash={flash}>
    <h1>
      Probes {chosen && <span class="subtitle">worker {chosen.name}</span>}
    </h1>
    <p class="hint">A probe runs a maintenance command on a worker's host over SSH, only if the agent's allow list (--probe-allow) has it; every request is kept.</p>
    <form method="get" action="/ui/probes" class="inline" aria-label="Choose a worker">
      <label for="probe-worker">Worker</label>
      <select id="probe-worker" name="worker">
        {workers.map((w) => (
          <option value={w.id} selected={w.id === chosen?.id}>
            {`${w.pool} / ${w.name} (${w.status})`}
          </option>
        ))}
      </select>
      <button type="submit">Show</button>
    </form>
    {workers.length === 0 && <EmptyState>No workers yet.</EmptyState>}
    {chosen && (
      <>
        {chosen.status !== "offline" && (
          <form method="post" action={`/ui/probes/${enc(chosen.id)}`} class="inline" aria-label={`Run a probe on ${chosen.name}`}>
            <label for="probe-command">Command</label>
            <input id="probe-command" name="command" required placeholder="uptime" />
            <label for="probe-timeout">Timeout (s)</label>
            <input id="probe-timeout" name="timeout_s" inputmode="numeric" size={4} placeholder="30" />
            <button type="submit" class="primary">
              Run probe
            </button>
          </form>
        )}
        <ProbeTable worker={chosen.id} probes={probes} />
      </>
    )}
  </Layout>
);

export const DatasetsPage: FC<{ viewer: Viewer; datasets: Dataset[]; next: string | null; project: string | undefined }> = ({ viewer, datasets, next, project }) => (
  <Layout title="Datasets" viewer={viewer} current="datasets">
    <h1>Datasets</h1>
    <form method="get" action="/ui/datasets" class="inline" role="search" aria-label="Filter datasets by project">
      <label for="dataset-project">Project</label>
      <select id="dataset-project" name="project">
        <option value="" selected={!project}>
          all projects
        </option>
        {viewer.projects.map((p) => (
          <option value={p.name} selected={p.name === project}>
            {p.name}
          </option>
        ))}
      </select>
      <button type="submit">Filter</button>
    </form>
    {datasets.length === 0 ? (
      <EmptyState>No datasets{project ? ` in project ${project}` : ""}.</EmptyState>
    ) : (
      <table class="grid datasets">
        <caption class="sr-only">Datasets, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Dataset</th>
            <th scope="col">Project</th>
            <th scope="col">Size</th>
            <th scope="col">Status</th>
            <th scope="col">sha256</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {datasets.map((d) => (
            <tr data-dataset={d.id}>
              <td data-label="Dataset">
                <strong>{d.name}</strong>
                <small class="muted block">
                  <code>{d.id}</code>
                </small>
              </td>
              <td data-label="Project">{d.project}</td>
              <td data-label="Size">{formatBytes(d.size)}</td>
              <td data-label="Status">
                <StatusBadge status={d.status === "ready" ? "completed" : "running"} />
                <span class="sr-only">{d.status}</span>
              </td>
              <td data-label="sha256">{d.sha256 ? <code class="hash">{d.sha256.slice(0, 16)}…</code> : <Dash />}</td>
              <td data-label="Created" class="nowrap">
                <Time iso={d.created_at} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    )}
    <Pager path="/ui/datasets" query={{ project }} next={next} />
  </Layout>
);

export const poolHref = (pool: string) => `/ui/pools/${enc(pool)}`;

export const PoolsPage: FC<{ viewer: Viewer; pools: PoolSummary[] }> = ({ viewer, pools }) => (
  <Layout title="Pools" viewer={viewer} current="pools">
    <h1>Pools</h1>
    <p class="hint">Each pool's sandbox policy: the runtimes its jobs may use, egress, what builds reach, and the images command jobs may pull.</p>
    {pools.length === 0 ? (
      <EmptyState>No pool has workers or unfinished jobs yet.</EmptyState>
    ) : (
      <ul class="project-list">
        {pools.map((p) => (
          <li>
            <a href={poolHref(p.pool)}>{p.pool}</a> <span class="muted">{`${p.workers.online} online, ${p.queued} queued`}</span>
          </li>
        ))}
      </ul>
    )}
    <form method="get" action="/ui/pools" class="inline" aria-label="Open a pool's policy by name">
      <label for="pool-open">Another pool</label>
      <input id="pool-open" name="pool" required maxlength={63} />
      <button type="submit">Open</button>
    </form>
  </Layout>
);

const lines = (xs: string[]) => xs.join("\n");

export const PoolSandboxPage: FC<{ viewer: Viewer; view: PoolSandboxView; flash?: Flash }> = ({ viewer, view, flash }) => {
  const s = view.sandbox;
  return (
    <Layout title={`Pool ${view.pool}`} viewer={viewer} current="pools" flash={flash}>
      <p class="crumbs">
        <a href="/ui/pools">Pools</a>
      </p>
      <h1>
        Pool {view.pool} <span class="subtitle">sandbox policy</span>
      </h1>
      <p class="hint">
        {view.updated_at ? (
          <>
            Set by {view.updated_by} at <Time iso={view.updated_at} />.
          </>
        ) : (
          "This pool has the defaults."
        )}{" "}
        Changes apply to jobs submitted from now on.
      </p>
      <form method="post" action={`${poolHref(view.pool)}/sandbox`} class="card stack" aria-label={`Sandbox policy of pool ${view.pool}`}>
        <fieldset>
          <legend>Runtimes jobs may use</legend>
          {Runtime.options.map((r) => (
            <label class="check">
              <input type="checkbox" name="runtimes" value={r} checked={s.runtimes.includes(r)} /> {r}
            </label>
          ))}
        </fieldset>
        <label for="sb-default">Default runtime</label>
        <select id="sb-default" name="default_runtime">
          {Runtime.options.map((r) => (
            <option value={r} selected={r === s.default_runtime}>
              {r}
            </option>
          ))}
        </select>
        <label class="check">
          <input type="checkbox" name="egress" value="1" checked={s.egress} /> Jobs may ask for egress
        </label>
        <label for="sb-allow">Egress allow list (one host, address or CIDR a line; empty: anywhere public)</label>
        <textarea id="sb-allow" name="egress_allow" rows={4}>
          {lines(s.egress_allow)}
        </textarea>
        <label for="sb-build">Build network</label>
        <select id="sb-build" name="build_network">
          {BuildNetwork.options.map((b) => (
            <option value={b} selected={b === s.build_network}>
              {b}
            </option>
          ))}
        </select>
        <label for="sb-images">Images command jobs may pull (one pattern a line, * for any characters)</label>
        <textarea id="sb-images" name="images" rows={4}>
          {lines(s.images)}
        </textarea>
        <label class="check">
          <input type="checkbox" name="exec" value="1" checked={s.exec} /> Members may exec into running jobs
        </label>
        <button type="submit" class="primary">
          Save policy
        </button>
      </form>
    </Layout>
  );
};
