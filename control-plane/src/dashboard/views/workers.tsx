/** @jsxImportSource hono/jsx */
import type { FC } from "hono/jsx";
import { Ago, EmptyState, formatMemoryMb, Layout, LiveRegion, StatusBadge, uiHref, type Flash, type Viewer } from "./parts.tsx";
import type { Worker } from "./types.ts";

export const WORKERS_REFRESH_MS = 3000;

const enc = encodeURIComponent;

const Gpus: FC<{ w: Worker }> = ({ w }) =>
  w.caps.gpus === 0 ? (
    <span class="muted">none</span>
  ) : (
    <span title={w.caps.gpu_devices.map((g) => JSON.stringify(g)).join("\n")}>
      {w.caps.gpus}
      {w.caps.nvidia_runtime ? "" : " (no NVIDIA runtime)"}
    </span>
  );

const Labels: FC<{ labels: Record<string, string> }> = ({ labels }) => {
  const entries = Object.entries(labels);
  if (entries.length === 0) return <span class="muted">none</span>;
  return (
    <ul class="labels">
      {entries.map(([k, v]) => (
        <li>
          <code>{`${k}=${v}`}</code>
        </li>
      ))}
    </ul>
  );
};

const DrainButton: FC<{ w: Worker }> = ({ w }) => {
  const undrain = w.status === "draining";
  return (
    <form method="post" action={`/ui/workers/${enc(w.id)}/${undrain ? "undrain" : "drain"}`}>
      <button type="submit" class={undrain ? undefined : "danger"}>
        {undrain ? "Undrain" : "Drain"} <span class="sr-only">{w.name}</span>
      </button>
    </form>
  );
};

export const WorkerTable: FC<{ workers: Worker[]; pool: string | undefined; admin: boolean; now: number }> = ({ workers, pool, admin, now }) => (
  <LiveRegion src={uiHref("/ui/live/workers", { pool })} every={WORKERS_REFRESH_MS} id="workers-live">
    {workers.length === 0 ? (
      <EmptyState>
        No workers{pool ? ` in pool ${pool}` : ""} yet.{" "}
        {admin ? <a href={uiHref("/ui/onboarding", { pool })}>Add a worker</a> : <>The admin adds workers</>}: issue an agent token and start an agent with it.
      </EmptyState>
    ) : (
      <table class="grid workers">
        <caption class="sr-only">Workers by pool and name</caption>
        <thead>
          <tr>
            <th scope="col">Worker</th>
            <th scope="col">Status</th>
            <th scope="col">Pool</th>
            <th scope="col">Slots in use</th>
            <th scope="col">CPUs</th>
            <th scope="col">Memory</th>
            <th scope="col">GPUs</th>
            <th scope="col">OS</th>
            <th scope="col">Sandbox</th>
            <th scope="col">Labels</th>
            <th scope="col">Last heartbeat</th>
            {admin && <th scope="col">Action</th>}
          </tr>
        </thead>
        <tbody>
          {workers.map((w) => (
            <tr data-worker={w.name}>
              <td data-label="Worker">
                <strong>{w.name}</strong>
                <small class="muted block">
                  <code>{w.id}</code> · agent {w.agent_version}
                </small>
              </td>
              <td data-label="Status">
                <StatusBadge status={w.status} />
              </td>
              <td data-label="Pool" class="nowrap">{w.pool}</td>
              <td data-label="Slots in use">
                {w.running} / {w.slots}
              </td>
              <td data-label="CPUs">{w.caps.cpu_cores}</td>
              <td data-label="Memory">{formatMemoryMb(w.caps.memory_mb)}</td>
              <td data-label="GPUs">
                <Gpus w={w} />
              </td>
              <td data-label="OS">
                {w.caps.os} · {w.caps.arch}
                {w.caps.wsl ? " · WSL" : ""}
              </td>
              <td data-label="Sandbox">
                {w.caps.runtimes.join(", ")}
                {w.caps.egress ? " · egress" : ""}
              </td>
              <td data-label="Labels">
                <Labels labels={w.caps.labels} />
              </td>
              <td data-label="Last heartbeat">
                <Ago iso={w.last_seen} now={now} />
              </td>
              {admin && (
                <td data-label="Action">
                  <DrainButton w={w} />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    )}
  </LiveRegion>
);

export const WorkersPage: FC<{ viewer: Viewer; workers: Worker[]; pool: string | undefined; now: number; flash?: Flash }> = (p) => {
  const admin = p.viewer.session.principal.kind === "admin";
  return (
    <Layout title="Workers" viewer={p.viewer} current="workers" flash={p.flash}>
      <h1>Workers</h1>
      <form method="get" action="/ui/workers" class="inline" role="search" aria-label="Filter workers by pool">
        <label for="worker-pool">Pool</label>
        <input id="worker-pool" name="pool" value={p.pool ?? ""} placeholder="any pool" />
        <button type="submit">Filter</button>
      </form>
      {!admin && <p class="hint">Draining and undraining workers needs an admin token.</p>}
      <WorkerTable workers={p.workers} pool={p.pool} admin={admin} now={p.now} />
    </Layout>
  );
};
