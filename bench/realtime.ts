import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { SseParser } from "../cli/src/sse.ts";
import { issueAgentToken, runCommand, startAgent } from "../scripts/local-grid.ts";
import { call, processTreeUsage, runtimeUrl, until, type BenchPlane } from "./grid.ts";
import { median, p99, round, type Figure } from "./stats.ts";

const SECTION = "11 realtime";
/** How long a job sleeps before its first line, so that its followers are open by then. */
const HEAD_START_S = 3;

/** Wall-clock now in ms with sub-ms precision, comparable with python's time.time_ns() on this machine. */
const wallMs = () => performance.timeOrigin + performance.now();

interface Arrival {
  text: string;
  at: number;
}

/**
 * One SSE follower of a job's log over real HTTP, as a client does it: a stream that breaks (a
 * reader too far behind is closed, docs/streams.md) is opened again after the last id it got.
 * `opened` settles when the first response's headers came, `done` at the `end` event, with
 * every stdout line, when it arrived, and how many times the stream was reopened.
 */
function follow(cp: BenchPlane, id: string, limitMs: number): { opened: Promise<void>; done: Promise<{ lines: Arrival[]; reconnects: number }> } {
  let opened!: () => void;
  const openedP = new Promise<void>((r) => (opened = r));
  const signal = AbortSignal.timeout(limitMs);
  const lines: Arrival[] = [];
  let lastId: string | undefined;
  let reconnects = -1;
  const once = async (): Promise<boolean> => {
    reconnects++;
    const headers: Record<string, string> = { authorization: `Bearer ${cp.adminToken}`, ...(lastId ? { "last-event-id": lastId } : {}) };
    const res = await fetch(`${cp.url}/v1/jobs/${id}/logs?follow=1`, { headers, signal });
    if (!res.ok || !res.body) throw new Error(`follow ${id}: ${res.status} ${await res.text()}`);
    opened();
    const parser = new SseParser();
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) {
        const at = wallMs();
        for (const ev of parser.push(decoder.decode(chunk, { stream: true }))) {
          if (ev.event === "end") return true;
          if (ev.event === "error") throw new Error(`follow ${id}: ${ev.event} ${ev.data}`);
          if (ev.event !== "log") continue;
          lastId = ev.id;
          const line = JSON.parse(ev.data) as { stream: string; text: string };
          if (line.stream === "stdout") lines.push({ text: line.text.replace(/\n$/, ""), at });
        }
      }
    } catch (err) {
      if (signal.aborted) throw err;
    }
    return false; // closed or broken before `end`: open it again after lastId
  };
  const done = (async () => {
    while (!(await once()));
    return { lines, reconnects };
  })();
  // A follower that fails before its headers fails `done` too; `opened` must not hang then.
  done.catch(() => opened());
  return { opened: openedP, done };
}

/** How many of 0..n-1 a follower missed, got more than once, or got out of order. */
function exactness(lines: Arrival[], n: number): { lost: number; duplicated: number; outOfOrder: number } {
  const seen = new Array<number>(n).fill(0);
  let outOfOrder = 0;
  let last = -1;
  for (const { text } of lines) {
    const i = Number(text);
    if (Number.isInteger(i) && i >= 0 && i < n) seen[i]!++;
    if (!(i > last)) outOfOrder++;
    last = i;
  }
  return { lost: seen.filter((c) => c === 0).length, duplicated: seen.reduce((d, c) => d + Math.max(0, c - 1), 0), outOfOrder };
}

/** The wrangler dev's workerd processes (pid → whether it is the Workers runtime rather than wrangler's proxy). */
async function workerdPids(cp: BenchPlane): Promise<{ all: number; runtime: number }> {
  const port = new URL(await runtimeUrl(cp)).port;
  const listening = await runCommand("ss", ["-ltnpH"]);
  const runtime = Number(new RegExp(`127\\.0\\.0\\.1:${port} .*?pid=(\\d+),`).exec(listening)?.[1]);
  if (!Number.isInteger(runtime)) throw new Error(`no process listens on the runtime's port ${port}`);
  return { all: cp.process.pid!, runtime };
}

async function finished(cp: BenchPlane, id: string, limitMs: number, intervalMs = 50): Promise<string> {
  let status = "queued";
  await until(async () => ["completed", "failed", "canceled"].includes((status = (await call(cp, "GET", `/v1/jobs/${id}`)).status)), limitMs, `job ${id}`, intervalMs);
  return status;
}

/**
 * 11. The realtime log path through a real agent and Docker: (a) latency from a line's print in
 * the container (its wall-clock time.time_ns(), same machine) to its arrival at an SSE follower;
 * (b) control-plane CPU per line of a fast job with 0 and with `followers` followers, and
 * whether each follower got every line exactly once. Locally the coordinator and the LogStream
 * objects share one workerd, so (b) is the control plane's CPU per line, not the coordinator's.
 */
export async function benchRealtime(cp: BenchPlane, opts: { latencyLines: number; floodLines: number; followers: number; limitMs: number }): Promise<Figure[]> {
  const pool = "bench-realtime";
  const agent = startAgent({ url: cp.url, token: await issueAgentToken(cp, pool, pool), name: pool, slots: 1, stateDir: mkdtempSync(join(cp.dir, `${pool}-`)) });
  try {
    await until(async () => (await call(cp, "GET", `/v1/workers?pool=${pool}`)).workers.some((w: { status: string }) => w.status === "online"), 60_000, `agent ${pool} online`);
    await finished(cp, (await call(cp, "POST", "/v1/jobs", { kind: "python", pool, python: { script: "print(1)" } })).id, 60_000); // warm-up

    // (a) latency: one follower, one line every ~20 ms.
    const latencyScript = `import time\ntime.sleep(${HEAD_START_S})\nfor i in range(${opts.latencyLines}):\n    print(time.time_ns(), flush=True)\n    time.sleep(0.02)\n`;
    const lat = await call(cp, "POST", "/v1/jobs", { kind: "python", pool, python: { script: latencyScript } });
    const one = follow(cp, lat.id, opts.limitMs);
    await one.opened;
    const openedAt = wallMs();
    const arrivals = (await one.done).lines;
    const delays = arrivals.map((a) => a.at - Number(a.text) / 1e6);
    const firstPrinted = arrivals.length ? Number(arrivals[0]!.text) / 1e6 : Number.NaN;
    if (!(openedAt < firstPrinted)) throw new Error(`the follower opened ${round(openedAt - firstPrinted)} ms after the first line was printed`);

    // (b) CPU per line, without and with followers.
    const { all, runtime } = await workerdPids(cp);
    const floodScript = `import sys, time\ntime.sleep(${HEAD_START_S})\nsys.stdout.write("".join(f"{i}\\n" for i in range(${opts.floodLines})))\n`;
    const flood = async (followerCount: number) => {
      const job = await call(cp, "POST", "/v1/jobs", { kind: "python", pool, python: { script: floodScript } });
      const followers = Array.from({ length: followerCount }, () => follow(cp, job.id, opts.limitMs));
      await Promise.all(followers.map((f) => f.opened));
      // From the followers being open to the job's result and every follower's end; both runs
      // read the job alike (every 250 ms), so the reads weigh the same on each.
      const before = [await processTreeUsage(all, "workerd"), await processTreeUsage(runtime)];
      const [got, status] = await Promise.all([Promise.all(followers.map((f) => f.done)), finished(cp, job.id, opts.limitMs, 250)]);
      const after = [await processTreeUsage(all, "workerd"), await processTreeUsage(runtime)];
      const perLine = (k: number) => ((after[k]!.cpuSeconds - before[k]!.cpuSeconds) * 1e6) / opts.floodLines;
      const checks = got.map((g) => exactness(g.lines, opts.floodLines));
      return { status, all: perLine(0), runtime: perLine(1), checks, reconnects: got.reduce((n, g) => n + g.reconnects, 0) };
    };
    const alone = await flood(0);
    const watched = await flood(opts.followers);
    const sum = (k: "lost" | "duplicated" | "outOfOrder") => watched.checks.reduce((s, c) => s + c[k], 0);
    const exact = watched.checks.filter((c) => c.lost + c.duplicated + c.outOfOrder === 0).length;

    const local = "locally the coordinator and the LogStream objects share one workerd: control-plane CPU, not the coordinator's alone";
    return [
      { section: SECTION, name: `log latency: print in the container → SSE follower p50 (${arrivals.length} lines, 20 ms apart)`, value: round(median(delays), 1), unit: "ms", target: "<= 30" },
      { section: SECTION, name: "log latency: print in the container → SSE follower p99", value: round(p99(delays), 1), unit: "ms" },
      { section: SECTION, name: `${opts.floodLines} lines, 0 followers (${alone.status}): workerd CPU per line, runtime + wrangler's proxy (${local})`, value: round(alone.all, 1), unit: "µs/line" },
      { section: SECTION, name: `${opts.floodLines} lines, 0 followers: the Workers runtime's workerd alone`, value: round(alone.runtime, 1), unit: "µs/line" },
      { section: SECTION, name: `${opts.floodLines} lines, ${opts.followers} followers (${watched.status}): workerd CPU per line, runtime + wrangler's proxy`, value: round(watched.all, 1), unit: "µs/line" },
      { section: SECTION, name: `${opts.floodLines} lines, ${opts.followers} followers: the Workers runtime's workerd alone`, value: round(watched.runtime, 1), unit: "µs/line" },
      { section: SECTION, name: `what each follower adds: (${opts.followers} followers − 0) ÷ (lines × followers), all workerd`, value: round((watched.all - alone.all) / opts.followers, 1), unit: "µs/line/follower" },
      { section: SECTION, name: `followers of ${opts.followers} that got every line exactly once, in order`, value: exact, unit: "followers", target: `= ${opts.followers}` },
      { section: SECTION, name: `streams reopened after the last id (a reader too far behind is closed), summed over the ${opts.followers} followers`, value: watched.reconnects, unit: "reopens" },
      { section: SECTION, name: `lines lost, summed over the ${opts.followers} followers`, value: sum("lost"), unit: "lines", target: "= 0" },
      { section: SECTION, name: `lines duplicated, summed over the ${opts.followers} followers`, value: sum("duplicated"), unit: "lines", target: "= 0" },
      { section: SECTION, name: `lines out of order, summed over the ${opts.followers} followers`, value: sum("outOfOrder"), unit: "lines", target: "= 0" },
    ];
  } finally {
    await agent.stop("SIGTERM");
  }
}
