/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { apiFor, call, type Api } from "../api.ts";
import { enc, flashFrom, orExplain, page, withQuery } from "../render.tsx";
import type { DashEnv } from "../session.ts";
import { viewerOf } from "../viewer.ts";
import { OVERVIEW_MINUTES, OverviewPage, PoolCards, type Overview } from "../views/overview.tsx";
import type { Flash } from "../views/parts.tsx";
import { WorkersPage, WorkerTable } from "../views/workers.tsx";

/** Pools the overview draws charts for. */
const OVERVIEW_POOLS = 12;

async function overviewData(api: Api): Promise<Overview> {
  const { pools } = await call(api.v1.pools.$get());
  const shown = await Promise.all(
    pools.slice(0, OVERVIEW_POOLS).map(async (pool) => ({
      pool,
      stats: await call(api.v1.pools[":pool"].stats.$get({ param: { pool: enc(pool.pool) }, query: { minutes: OVERVIEW_MINUTES } })),
    })),
  );
  return { pools: shown, more: pools.slice(OVERVIEW_POOLS).map((p) => p.pool) };
}

async function workerList(api: Api, pool: string | undefined) {
  return (await call(api.v1.workers.$get(withQuery({}, { pool })))).workers;
}

/** The grid itself: the overview of pools, and the workers with drain and undrain. */
export const gridPages = new Hono<DashEnv>();

// Overview: pools with queue depth, running jobs, and charts of the last hour.
gridPages.get("/ui", async (c) => {
  const api = await apiFor(c);
  const [viewer, overview] = await Promise.all([viewerOf(c, api), overviewData(api)]);
  return page(c, <OverviewPage viewer={viewer} overview={overview} flash={flashFrom(c)} />);
});
gridPages.get("/ui/live/overview", async (c) => c.html(<PoolCards overview={await overviewData(await apiFor(c))} />));

const poolQuery = (c: Context<DashEnv>) => c.req.query("pool") || undefined;

async function renderWorkersPage(c: Context<DashEnv>, flash: Flash, status: ContentfulStatusCode = 200) {
  const pool = poolQuery(c);
  const api = await apiFor(c);
  const [viewer, workers] = await Promise.all([viewerOf(c, api), workerList(api, pool)]);
  return page(c, <WorkersPage viewer={viewer} workers={workers} pool={pool} now={Date.now()} flash={flash} />, status);
}

gridPages.get("/ui/workers", (c) => renderWorkersPage(c, flashFrom(c)));
gridPages.get("/ui/live/workers", async (c) => {
  const pool = poolQuery(c);
  const workers = await workerList(await apiFor(c), pool);
  return c.html(<WorkerTable workers={workers} pool={pool} admin={c.var.session.principal.kind === "admin"} now={Date.now()} />);
});

for (const action of ["drain", "undrain"] as const) {
  gridPages.post(`/ui/workers/:id/${action}`, async (c) => {
    const api = await apiFor(c);
    const param = { id: enc(c.req.param("id")) };
    return orExplain(
      async () => {
        await call(action === "drain" ? api.v1.workers[":id"].drain.$post({ param }) : api.v1.workers[":id"].undrain.$post({ param }));
        return c.redirect(`/ui/workers?done=${action}ed`, 303);
      },
      (message, status) => renderWorkersPage(c, { error: `Could not ${action} the worker: ${message}` }, status),
    );
  });
}
