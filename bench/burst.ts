import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { issueAgentToken, startAgent } from "../scripts/local-grid.ts";
import { call, listJobs, until } from "./grid.ts";
import type { BenchPlane } from "./grid.ts";
import { median, round, type Figure } from "./stats.ts";

interface Run {
  startedAt: number;
  finishedAt: number;
}

/**
 * How busy a worker's slots were, from the attempts' own timestamps: each start is put in
 * the slot freed most recently before it (the result it followed), or, when it came before
 * any result (a prefetched job starts as the container exits, before its result is in),
 * in the slot whose job ended first. `gaps` are the times from a slot's result to its next
 * start. Busy is the time each slot ran a job (up to its next start) over slots × the span
 * from the first start to the last result.
 */
export function slotUse(runs: readonly Run[], slots: number): { utilisation: number; gaps: number[] } {
  const sorted = [...runs].sort((a, b) => a.startedAt - b.startedAt);
  const last: (Run | null)[] = Array.from({ length: slots }, () => null);
  const gaps: number[] = [];
  let busy = 0;
  for (const r of sorted) {
    const slotsNow = last.map((run, i) => ({ run, i }));
    const idle = slotsNow.find((s) => s.run === null);
    const freed = slotsNow.filter((s) => s.run && s.run.finishedAt <= r.startedAt).sort((a, b) => b.run!.finishedAt - a.run!.finishedAt)[0];
    const pick = idle ?? freed ?? slotsNow.sort((a, b) => a.run!.finishedAt - b.run!.finishedAt)[0]!;
    if (pick.run) {
      gaps.push(Math.max(0, r.startedAt - pick.run.finishedAt));
      busy += Math.min(pick.run.finishedAt, r.startedAt) - pick.run.startedAt;
    }
    last[pick.i] = r;
  }
  for (const run of last) if (run) busy += run.finishedAt - run.startedAt;
  const span = Math.max(...runs.map((r) => r.finishedAt)) - Math.min(...runs.map((r) => r.startedAt));
  return { utilisation: busy / (slots * span), gaps };
}

/** One burst on a fresh agent: `jobs` trivial python jobs submitted at once, timed to the last result. */
async function burst(cp: BenchPlane, pool: string, opts: { jobs: number; slots: number; agentArgs: string[] }) {
  const agent = startAgent({ url: cp.url, token: await issueAgentToken(cp, pool, pool), name: pool, slots: opts.slots, stateDir: mkdtempSync(join(cp.dir, `${pool}-`)), extraArgs: opts.agentArgs });
  try {
    await until(async () => (await call(cp, "GET", `/v1/workers?pool=${pool}`)).workers.some((w: { status: string }) => w.status === "online"), 60_000, `agent ${pool} online`);
    // Warm-up: image cache and prestarted sandboxes as a busy agent has them.
    for (let i = 0; i < 2; i++) await finished(cp, [await submit(cp, pool)]);
    const warm = new Set((await listJobs(cp, pool)).map((j) => j.id));
    const t0 = Date.now();
    const ids = await Promise.all(Array.from({ length: opts.jobs }, () => submit(cp, pool)));
    await finished(cp, ids);
    const wallS = (Date.now() - t0) / 1000;
    const runs: Run[] = [];
    for (const id of ids.filter((i) => !warm.has(i))) {
      const { attempts } = await call(cp, "GET", `/v1/jobs/${id}/attempts`);
      for (const a of attempts as { started_at: string | null; finished_at: string | null }[]) {
        if (a.started_at && a.finished_at) runs.push({ startedAt: Date.parse(a.started_at), finishedAt: Date.parse(a.finished_at) });
      }
    }
    const use = slotUse(runs, opts.slots);
    return { jobsPerS: opts.jobs / wallS, utilisation: use.utilisation, gap: median(use.gaps), run: median(runs.map((r) => r.finishedAt - r.startedAt)) };
  } finally {
    await agent.stop("SIGTERM");
  }
}

async function submit(cp: BenchPlane, pool: string): Promise<string> {
  return (await call(cp, "POST", "/v1/jobs", { kind: "python", pool, python: { script: "print(1)" } })).id;
}

async function finished(cp: BenchPlane, ids: string[]): Promise<void> {
  const pending = new Set(ids);
  await until(
    async () => {
      for (const id of [...pending]) {
        const j = await call(cp, "GET", `/v1/jobs/${id}`);
        if (j.status === "completed") pending.delete(id);
        else if (j.status === "failed" || j.status === "canceled") throw new Error(`burst job ${id} ${j.status}: ${j.failure_message}`);
      }
      return pending.size === 0;
    },
    5 * 60_000,
    `${ids.length} burst jobs`,
    20,
  );
}

/**
 * 8. A burst of trivial python jobs on one real agent with 2 slots and real Docker, with the
 * next job prefetched (the default) and without: jobs/s, how busy the slots were, and the
 * median gap between a slot's result and its next start.
 */
export async function benchBurst(cp: BenchPlane, jobs: number): Promise<Figure[]> {
  const slots = 2;
  const figures: Figure[] = [];
  for (const prefetch of [0, 1]) {
    const label = `prefetch ${prefetch}${prefetch === 1 ? " (default)" : ""}`;
    const r = await burst(cp, `bench-burst-p${prefetch}`, { jobs, slots, agentArgs: ["--prefetch", String(prefetch)] });
    figures.push(
      { section: "8 burst", name: `${jobs} jobs on 2 slots, ${label}: jobs/s`, value: round(r.jobsPerS, 2), unit: "jobs/s" },
      { section: "8 burst", name: `${label}: slots busy`, value: round(r.utilisation * 100), unit: "%", target: ">= 90" },
      { section: "8 burst", name: `${label}: result→next start p50`, value: round(r.gap), unit: "ms" },
      { section: "8 burst", name: `${label}: job run (start→result) p50`, value: round(r.run), unit: "ms" },
    );
  }
  return figures;
}
