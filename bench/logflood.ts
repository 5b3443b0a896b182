import { mkdtempSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { LogSender, type LogChannel } from "../agent/src/log-sender.ts";
import { DEFAULT_LOG_LIMITS } from "../agent/src/runner/log-collector.ts";
import { encode } from "../protocol/index.ts";
import { issueAgentToken, startAgent } from "../scripts/local-grid.ts";
import { call, until, type BenchPlane } from "./grid.ts";
import { median, p99, round, type Figure } from "./stats.ts";

const SECTION = "10 logflood";

/** A process's peak and current resident memory (bytes), from /proc/<pid>/status. */
function memory(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
  return { peak: kib("VmHWM"), now: kib("VmRSS") };
}

/**
 * The agent's own part of a line's delay: from the container's output reaching the agent to
 * the line being handed to an idle socket (in process, no control plane), one line at a time.
 */
async function agentDelay(samples: number): Promise<number[]> {
  let handed: (() => void) | null = null;
  const channel: LogChannel = { writable: true, buffered: 0, send: () => handed?.() };
  const sender = new LogSender(channel, DEFAULT_LOG_LIMITS);
  const log = sender.open({ job_id: "bench", attempt: 1 }, DEFAULT_LOG_LIMITS.jobBytes);
  const delays: number[] = [];
  for (let i = 0; i < samples; i++) {
    const sent = new Promise<void>((r) => (handed = r));
    const t0 = performance.now();
    log.write("stdout", Buffer.from(`line ${i}\n`));
    await sent;
    delays.push(performance.now() - t0);
  }
  return delays;
}

/**
 * The agent alone: `lines` short lines, read in 64 KiB chunks, split, queued, batched and
 * encoded onto a socket stand-in that writes each frame a tick later; lines/s.
 */
async function agentThroughput(lines: number): Promise<number> {
  const ref = { job_id: "bench", attempt: 1 };
  let sender: LogSender | null = null;
  const channel = {
    writable: true,
    buffered: 0,
    send(msg: Parameters<LogChannel["send"]>[0]) {
      this.buffered += encode(msg).length;
      setImmediate(() => {
        this.buffered = 0;
        sender?.drained();
      });
    },
  };
  sender = new LogSender(channel, DEFAULT_LOG_LIMITS);
  const log = sender.open(ref, DEFAULT_LOG_LIMITS.jobBytes);
  const output = Buffer.from(Array.from({ length: lines }, (_, i) => `${i}\n`).join(""));
  const t0 = performance.now();
  for (let at = 0; at < output.length; at += 64 * 1024) log.write("stdout", output.subarray(at, at + 64 * 1024));
  await sender.finish(ref);
  return lines / ((performance.now() - t0) / 1000);
}

/** Every stdout line of a job, read back page by page. */
async function stdoutLines(cp: BenchPlane, id: string): Promise<number> {
  let count = 0;
  let after: string | null = null;
  for (;;) {
    const page: { lines: { stream: string }[]; next_cursor: string | null; more?: boolean } = await call(cp, "GET", `/v1/jobs/${id}/logs${after ? `?after=${after}` : ""}`);
    for (const l of page.lines) if (l.stream === "stdout") count++;
    after = page.next_cursor;
    if (page.more === false || !after || page.lines.length === 0) return count;
  }
}

/**
 * 10. One job printing `lines` lines as fast as it can on a real agent: lines/s delivered
 * (the attempt's start to its result, which follows the whole log), lines lost (read back
 * through GET /v1/jobs/:id/logs; 0 below the cap), and the agent process's peak RSS; plus the
 * agent's own delay for a line on an idle socket.
 */
export async function benchLogFlood(cp: BenchPlane, lines: number): Promise<Figure[]> {
  const delays = await agentDelay(2000);
  const alone = await agentThroughput(lines);
  const pool = "bench-logflood";
  const agent = startAgent({ url: cp.url, token: await issueAgentToken(cp, pool, pool), name: pool, slots: 1, stateDir: mkdtempSync(join(cp.dir, `${pool}-`)) });
  try {
    await until(async () => (await call(cp, "GET", `/v1/workers?pool=${pool}`)).workers.some((w: { status: string }) => w.status === "online"), 60_000, `agent ${pool} online`);
    const pid = agent.process.pid!;
    const before = memory(pid);
    const { id } = await call(cp, "POST", "/v1/jobs", { kind: "python", pool, python: { script: `for i in range(${lines}): print(i)` } });
    let job: { status: string } = { status: "queued" };
    await until(async () => ["completed", "failed", "canceled"].includes((job = await call(cp, "GET", `/v1/jobs/${id}`)).status), 5 * 60_000, "the flood job", 50);
    const after = memory(pid);
    const [attempt] = (await call(cp, "GET", `/v1/jobs/${id}/attempts`)).attempts as { started_at: string; finished_at: string }[];
    const runS = (Date.parse(attempt!.finished_at) - Date.parse(attempt!.started_at)) / 1000;
    const delivered = await stdoutLines(cp, id);
    const mib = (b: number) => round(b / (1024 * 1024), 1);
    return [
      { section: SECTION, name: "agent: line written → handed to an idle socket p50", value: round(median(delays), 3), unit: "ms" },
      { section: SECTION, name: "agent: line written → handed to an idle socket p99", value: round(p99(delays), 3), unit: "ms" },
      { section: SECTION, name: `agent alone: ${lines} lines split, queued, batched and encoded`, value: round(alone), unit: "lines/s" },
      { section: SECTION, name: `${lines} lines printed as fast as python can (${job.status}): delivered, start → result`, value: round(lines / runS), unit: "lines/s" },
      { section: SECTION, name: `lines lost of ${lines} (read back page by page)`, value: lines - delivered, unit: "lines", target: "= 0" },
      { section: SECTION, name: "agent RSS peak (VmHWM) before the flood", value: mib(before.peak), unit: "MiB" },
      { section: SECTION, name: "agent RSS peak (VmHWM) after the flood", value: mib(after.peak), unit: "MiB" },
    ];
  } finally {
    await agent.stop("SIGTERM");
  }
}
