/** @jsxImportSource hono/jsx */
import type { FC } from "hono/jsx";
import { EmptyState, formatDuration, Layout, LiveRegion, uiHref, type Flash, type Viewer } from "./parts.tsx";
import type { PoolStats, PoolSummary } from "./types.ts";

export const OVERVIEW_REFRESH_MS = 5000;
/** The window the overview charts cover. */
export const OVERVIEW_MINUTES = 60;

const W = 300;
const H = 64;
const BAR = W / 60;

const hhmm = (iso: string) => `${iso.slice(11, 16)} UTC`;
const per = (bucketS: number) => (bucketS === 60 ? "minute" : `${formatDuration(bucketS * 1000)}`);

/** Jobs finished per bucket, stacked by outcome, as an inline SVG with a text summary. */
const FinishedChart: FC<{ stats: PoolStats; id: string }> = ({ stats, id }) => {
  const totals = stats.series.map((b) => b.completed + b.failed + b.canceled);
  const peak = Math.max(1, ...totals);
  const sum = (k: "completed" | "failed" | "canceled") => stats.series.reduce((n, b) => n + b[k], 0);
  const summary = `${stats.finished} jobs finished in the last ${OVERVIEW_MINUTES} minutes (${sum("completed")} completed, ${sum("failed")} failed, ${sum("canceled")} canceled); at most ${Math.max(...totals)} in one ${per(stats.bucket_s)}.`;
  return (
    <figure class="chart">
      <figcaption id={`${id}-cap`}>
        Finished per {per(stats.bucket_s)} <span class="muted">(peak {Math.max(...totals)})</span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-labelledby={`${id}-cap ${id}-sum`} focusable="false">
        <line class="axis" x1="0" y1={H - 0.5} x2={W} y2={H - 0.5} />
        {stats.series.map((b, i) => {
          let y = H;
          return (
            <g>
              <title>{`${hhmm(b.start)}: ${b.completed} completed, ${b.failed} failed, ${b.canceled} canceled`}</title>
              {(["completed", "failed", "canceled"] as const).map((k) => {
                const h = (b[k] / peak) * (H - 4);
                y -= h;
                return h > 0 ? <rect class={`bar ${k}`} x={i * BAR + 0.5} y={y} width={BAR - 1} height={h} /> : null;
              })}
            </g>
          );
        })}
      </svg>
      <p id={`${id}-sum`} class="sr-only">
        {summary}
      </p>
      <p class="legend" aria-hidden="true">
        <span class="key completed">completed</span> <span class="key failed">failed</span> <span class="key canceled">canceled</span>
      </p>
    </figure>
  );
};

/** Median wait (queue → container start) per bucket. */
const WaitChart: FC<{ stats: PoolStats; id: string }> = ({ stats, id }) => {
  const known = stats.series.map((b) => b.median_wait_ms).filter((w): w is number => w !== null);
  const peak = Math.max(1, ...known);
  const overall = stats.median_wait_ms === null ? "no job started" : `median ${formatDuration(stats.median_wait_ms)} over ${stats.started} starts`;
  const longest = known.length ? `; the longest median of one ${per(stats.bucket_s)} was ${formatDuration(Math.max(...known))}` : "";
  return (
    <figure class="chart">
      <figcaption id={`${id}-cap`}>
        Median wait, queue to start <span class="muted">({overall})</span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-labelledby={`${id}-cap ${id}-sum`} focusable="false">
        <line class="axis" x1="0" y1={H - 0.5} x2={W} y2={H - 0.5} />
        {stats.series.map((b, i) => {
          if (b.median_wait_ms === null) return null;
          const h = Math.max(1, (b.median_wait_ms / peak) * (H - 4));
          return (
            <rect class="bar wait" x={i * BAR + 0.5} y={H - h} width={BAR - 1} height={h}>
              <title>{`${hhmm(b.start)}: median wait ${formatDuration(b.median_wait_ms)} over ${b.started} starts`}</title>
            </rect>
          );
        })}
      </svg>
      <p id={`${id}-sum`} class="sr-only">
        {`Over the last ${OVERVIEW_MINUTES} minutes: ${overall}${longest}.`}
      </p>
    </figure>
  );
};

const PoolCard: FC<{ pool: PoolSummary; stats: PoolStats }> = ({ pool, stats }) => {
  const id = `pool-${pool.pool.replace(/[^a-z0-9-]/g, "-")}`;
  return (
    <section class="card pool" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>
        Pool {pool.pool} <small class="muted">{pool.policy}</small>
      </h2>
      <dl class="stats">
        <div>
          <dt>Queue depth</dt>
          <dd>{pool.queued}</dd>
        </div>
        <div>
          <dt>Running</dt>
          <dd>
            {pool.running}
            {pool.assigned > 0 && <small class="muted"> +{pool.assigned} starting</small>}
          </dd>
        </div>
        <div>
          <dt>Slots in use</dt>
          <dd>
            {pool.slots.in_use} / {pool.slots.total}
          </dd>
        </div>
        <div>
          <dt>Workers</dt>
          <dd>
            {pool.workers.online} online
            {pool.workers.draining > 0 && `, ${pool.workers.draining} draining`}
            {pool.workers.offline > 0 && `, ${pool.workers.offline} offline`}
          </dd>
        </div>
      </dl>
      <div class="charts">
        <FinishedChart stats={stats} id={`${id}-finished`} />
        <WaitChart stats={stats} id={`${id}-wait`} />
      </div>
      <p class="links">
        <a href={uiHref("/ui/jobs", { pool: pool.pool })}>
          Jobs <span class="sr-only">in pool {pool.pool}</span>
        </a>
        <a href={uiHref("/ui/workers", { pool: pool.pool })}>
          Workers <span class="sr-only">in pool {pool.pool}</span>
        </a>
      </p>
    </section>
  );
};

export interface Overview {
  pools: { pool: PoolSummary; stats: PoolStats }[];
  /** Pools left out of the page to keep it short. */
  more: string[];
}

export const PoolCards: FC<{ overview: Overview }> = ({ overview }) => (
  <LiveRegion src="/ui/live/overview" every={OVERVIEW_REFRESH_MS} id="overview-live">
    <div class="pools">
      {overview.pools.length === 0 ? (
        <EmptyState>
          No pools yet: a pool appears when its first agent connects or its first job is submitted. <a href="/ui/run">Run some Python</a>.
        </EmptyState>
      ) : (
        overview.pools.map((p) => <PoolCard pool={p.pool} stats={p.stats} />)
      )}
    </div>
    {overview.more.length > 0 && (
      <p class="hint">
        {overview.more.length} more pools not shown: {overview.more.join(", ")}. Their jobs and workers are on the Jobs and Workers pages.
      </p>
    )}
  </LiveRegion>
);

export const OverviewPage: FC<{ viewer: Viewer; overview: Overview; flash?: Flash }> = ({ viewer, overview, flash }) => (
  <Layout title="Overview" viewer={viewer} current="overview" flash={flash}>
    <h1>Pools</h1>
    <PoolCards overview={overview} />
  </Layout>
);
