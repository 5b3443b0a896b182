import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { WebSocket } from "ws";
import { cliBin } from "../scripts/build-cli.ts";
import { freePort, issueAgentToken, startAgent } from "../scripts/local-grid.ts";
import { call, processTreeUsage, until, type BenchPlane } from "./grid.ts";
import { median, p99, round, type Figure } from "./stats.ts";

const SECTION = "13 interactive sessions";
const SERVER = readFileSync(new URL("../test/support/port-server.py", import.meta.url), "utf8");
const PORT = 8000;

interface Target {
  /** Base URL of the server: through the tunnel, or straight to it on the agent host. */
  base: string;
  headers: Record<string, string>;
}

/** Requests per second of `total` small GETs, `concurrency` at a time. */
async function requestsPerS(t: Target, total: number, concurrency: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < total) {
        const res = await fetch(`${t.base}/hello`, { headers: t.headers });
        if (res.status !== 200) throw new Error(`GET /hello: ${res.status}`);
        await res.arrayBuffer();
      }
    }),
  );
  return total / ((performance.now() - t0) / 1000);
}

/** MiB/s of one download of `mib` MiB, read to the end. */
async function downloadMiBps(t: Target, mib: number): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${t.base}/big?mib=${mib}`, { headers: t.headers });
  let bytes = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.byteLength;
  if (bytes !== mib * 1024 * 1024) throw new Error(`download: ${bytes} bytes of ${mib} MiB`);
  return mib / ((performance.now() - t0) / 1000);
}

/** Round trips (ms) of `count` small WebSocket messages, one at a time. */
async function echoRoundTrips(t: Target, count: number): Promise<number[]> {
  const ws = new WebSocket(`${t.base.replace(/^http/, "ws")}/ws`, { headers: t.headers });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const samples: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const back = new Promise<void>((resolve) => ws.once("message", () => resolve()));
      ws.send(`echo ${i}`);
      await back;
      samples.push(performance.now() - t0);
    }
  } finally {
    ws.close();
  }
  return samples;
}

/** Time (ms) from `gridx jupyter` to the printed link of a page that answers. */
function jupyterToPage(cp: BenchPlane, pool: string): Promise<{ ms: number; id: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliBin(), "jupyter", "--pool", pool, "--no-open", "--json"], { env: { ...process.env, GRIDX_URL: cp.url, GRIDX_TOKEN: cp.adminToken }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("close", (code) => (code === 0 ? resolve({ ms: performance.now() - t0, id: (JSON.parse(out) as { job_id: string }).job_id }) : reject(new Error(`gridx jupyter exited ${code}: ${err.slice(-500)}`))));
  });
}

/**
 * 13. Interactive sessions: HTTP requests/s, a download's MiB/s and a WebSocket echo's round
 * trip through the tunnel (control plane → agent socket → docker exec relay → the job's
 * server), each against the same server run straight on the agent host in the same run; and
 * `gridx jupyter` to a page that answers.
 */
export async function benchSessions(cp: BenchPlane, opts: { requests: number; downloadMiB: number; echoes: number; jupyterRuns: number; limitMs: number }): Promise<Figure[]> {
  const pool = "bench-sessions";
  const agent = startAgent({ url: cp.url, token: await issueAgentToken(cp, pool, pool), name: pool, slots: 2, stateDir: mkdtempSync(join(cp.dir, `${pool}-`)) });
  const directPort = await freePort();
  let direct: ChildProcess | undefined;
  try {
    await until(async () => (await call(cp, "GET", `/v1/workers?pool=${pool}`)).workers.some((w: { status: string }) => w.status === "online"), 60_000, "the sessions agent online");
    const job = await call(cp, "POST", "/v1/jobs", { kind: "python", pool, python: { script: SERVER, args: [String(PORT)] }, ports: [{ port: PORT }], limits: { timeout_s: Math.ceil(opts.limitMs / 1000) } });
    const tunnel: Target = { base: `${cp.url}/v1/jobs/${job.id}/ports/${PORT}`, headers: { authorization: `Bearer ${cp.adminToken}` } };
    await until(async () => (await fetch(`${tunnel.base}/hello`, { headers: tunnel.headers })).status === 200, 120_000, "the job's server to answer through the tunnel");
    direct = spawn("python3", ["-c", SERVER, String(directPort)], { stdio: "ignore" });
    const straight: Target = { base: `http://127.0.0.1:${directPort}`, headers: {} };
    await until(async () => (await fetch(`${straight.base}/hello`).catch(() => null))?.status === 200, 30_000, "the direct server to answer");

    // Warm both (keep-alive relays, the JIT), then measure them interleaved.
    await requestsPerS(tunnel, 20, 4);
    await requestsPerS(straight, 20, 4);
    const rps = { tunnel: await requestsPerS(tunnel, opts.requests, 8), direct: await requestsPerS(straight, opts.requests, 8) };
    const direct0 = await downloadMiBps(straight, opts.downloadMiB);
    // Where a tunnelled MiB's time goes: CPU of each process it passes through.
    const dockerd = existsSync("/var/run/docker.pid") ? Number(readFileSync("/var/run/docker.pid", "utf8")) : null;
    const cpu = async () => ({
      controlPlane: (await processTreeUsage(cp.process.pid!)).cpuSeconds,
      agent: (await processTreeUsage(agent.process.pid!)).cpuSeconds,
      dockerd: dockerd ? (await processTreeUsage(dockerd, "dockerd")).cpuSeconds : 0,
    });
    const before = await cpu();
    const mibps = { direct: direct0, tunnel: await downloadMiBps(tunnel, opts.downloadMiB) };
    const after = await cpu();
    const perMiB = (k: keyof typeof before) => round(((after[k] - before[k]) * 1000) / opts.downloadMiB, 1);
    const echo = { tunnel: await echoRoundTrips(tunnel, opts.echoes), direct: await echoRoundTrips(straight, opts.echoes) };
    await call(cp, "POST", `/v1/jobs/${job.id}/cancel`, {});

    const pages: number[] = [];
    for (let i = 0; i < opts.jupyterRuns; i++) {
      const run = await jupyterToPage(cp, pool);
      pages.push(run.ms);
      await call(cp, "POST", `/v1/jobs/${run.id}/cancel`, {});
    }
    return [
      { section: SECTION, name: `HTTP GETs through the tunnel, 8 at a time (${opts.requests})`, value: round(rps.tunnel), unit: "req/s" },
      { section: SECTION, name: "the same GETs straight to the server on the agent host", value: round(rps.direct), unit: "req/s" },
      { section: SECTION, name: `${opts.downloadMiB} MiB download through the tunnel`, value: round(mibps.tunnel), unit: "MiB/s", target: `>= ${round(mibps.direct / 2)} (0.5x direct)` },
      { section: SECTION, name: `${opts.downloadMiB} MiB download straight from the server`, value: round(mibps.direct), unit: "MiB/s" },
      { section: SECTION, name: "tunnel / direct download", value: round(mibps.tunnel / mibps.direct, 2), unit: "x", target: ">= 0.5" },
      { section: SECTION, name: "CPU per tunnelled MiB: control plane (wrangler + workerd) / agent / dockerd", value: perMiB("controlPlane"), unit: `ms (agent ${perMiB("agent")}, dockerd ${perMiB("dockerd")})` },
      { section: SECTION, name: `WebSocket echo round trip through the tunnel p50 (${opts.echoes})`, value: round(median(echo.tunnel), 2), unit: "ms" },
      { section: SECTION, name: "WebSocket echo round trip through the tunnel p99", value: round(p99(echo.tunnel), 2), unit: "ms" },
      { section: SECTION, name: "WebSocket echo round trip, direct, p50 / p99", value: round(median(echo.direct), 2), unit: `ms (p99 ${round(p99(echo.direct), 2)})` },
      { section: SECTION, name: `gridx jupyter to a page that answers, p50 (${opts.jupyterRuns} runs)`, value: round(median(pages) / 1000, 2), unit: "s" },
    ];
  } finally {
    direct?.kill("SIGTERM");
    await agent.stop("SIGTERM");
  }
}
