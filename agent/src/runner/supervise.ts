import type { Readable } from "node:stream";
import type { JobLimits } from "../../../protocol/index.ts";
import { FrameDemuxer } from "../docker/frames.ts";
import type { DockerEngine } from "../docker/engine.ts";
import { walkFolder } from "../folder-bytes.ts";
import type { Logger } from "../logger.ts";
import type { JobLogFile } from "./job-log.ts";
import { OUTPUT_LIMITS } from "./output-rules.ts";
import { failedStep, type Verdict } from "./outcome.ts";
import type { RunHooks, StopReason } from "./runner.ts";

/** How often a paused output stream checks whether the congestion has cleared. */
const CONGESTION_POLL_MS = 50;

/** A running job's output folder is measured this often at most... */
const OUTPUT_CHECK_MS = 1000;
/** ...and never more than one part in this many of the time: a slow measurement (a huge folder) waits that much longer for the next. */
const OUTPUT_CHECK_SPACING = 10;

/** After the container exits, its output stream gets this long to deliver what is left. */
const DRAIN_WAIT_MS = 2000;

export interface SuperviseDeps {
  docker: DockerEngine;
  /** Seconds between SIGTERM and SIGKILL when a job is stopped. */
  stopGraceS: number;
  outputCapBytes: number;
}

export interface Exited {
  ok: true;
  exitCode: number;
  stopReason: StopReason | null;
  oomKilled: boolean;
  /** Why the output watch stopped the job, if it did. */
  outputOver: string | null;
  /** performance.now() as the engine reported the exit, before its output is drained. */
  exitedAt: number;
}

/**
 * Watches a started job to its exit: passes its output on, stops it at its timeout, when its
 * output goes over its limits, or when `stop` aborts (its reason the stop's), and reports
 * how it ended. A container it lost track of fails the job internal.
 */
export async function supervise(deps: SuperviseDeps, container: string, output: Readable, outputDir: string, limits: JobLimits, hooks: RunHooks, jobLog: Pick<JobLogFile, "write">, stop: AbortSignal, log: Logger): Promise<Exited | { ok: false; verdict: Verdict }> {
  const drained = connectOutput(output, hooks, jobLog);
  let stopReason: StopReason | null = null;
  let outputOver: string | null = null;
  const halt = (reason: StopReason) => {
    if (stopReason) return;
    stopReason = reason;
    hooks.system(`[gridx: stopping the job (${reason}); SIGTERM, then SIGKILL after ${deps.stopGraceS}s]`);
    deps.docker.stopContainer(container, deps.stopGraceS).catch((err: unknown) => log.warn("stop failed", { err }));
  };
  const timer = setTimeout(() => halt("timeout"), limits.timeout_s * 1000);
  const unwatch = watchOutput(outputDir, deps.outputCapBytes, (why) => {
    outputOver = why;
    halt("output_too_large");
  });
  const onAbort = () => halt((stop.reason as StopReason) ?? "user");
  stop.addEventListener("abort", onAbort, { once: true });
  if (stop.aborted) onAbort();
  let exitCode: number;
  let exitedAt: number;
  try {
    exitCode = await deps.docker.waitContainer(container);
    exitedAt = performance.now();
  } catch (err) {
    return { ok: false, verdict: failedStep(err, "internal", "lost track of the container") };
  } finally {
    clearTimeout(timer);
    unwatch();
    stop.removeEventListener("abort", onAbort);
    await Promise.race([drained, new Promise((r) => setTimeout(r, DRAIN_WAIT_MS))]);
  }
  const info = await deps.docker.inspectContainer(container);
  return { ok: true, exitCode, stopReason, oomKilled: info.State.OOMKilled, outputOver, exitedAt };
}

/**
 * Why a job's output folder is over its limits (more than `capBytes` bytes, or more than
 * OUTPUT_LIMITS.maxEntries entries), or null. The walk stops at whichever comes first, so it
 * never costs more than that many entries.
 */
export async function measureOutput(dir: string, capBytes: number): Promise<string | null> {
  let bytes = 0;
  const walked = await walkFolder(dir, OUTPUT_LIMITS.maxEntries, (f) => (bytes += f.size) <= capBytes);
  if (bytes > capBytes) return `the job wrote more than ${capBytes} bytes to /work/output`;
  if (!walked.complete) return `the job made more than ${OUTPUT_LIMITS.maxEntries} entries in /work/output`;
  return null;
}

/** Measures `dir` until it is over its limits, then calls `over` once; returns what stops watching. */
function watchOutput(dir: string, capBytes: number, over: (why: string) => void): () => void {
  let watching = true;
  let timer: NodeJS.Timeout;
  const check = async () => {
    const began = performance.now();
    // A folder changing under the walk may fail it; the next check looks again.
    const why = await measureOutput(dir, capBytes).catch(() => null);
    if (!watching) return;
    if (why) return over(why);
    timer = setTimeout(() => void check(), Math.max(OUTPUT_CHECK_MS, OUTPUT_CHECK_SPACING * (performance.now() - began)));
  };
  timer = setTimeout(() => void check(), OUTPUT_CHECK_MS);
  return () => {
    watching = false;
    clearTimeout(timer);
  };
}

/**
 * Passes a container's output to the job's hooks and log file as it comes; resolves once it ends.
 * Back-pressure: while the line to the coordinator is congested, stop reading. Docker's pipe
 * then fills and the job's own writes block, as they would on a slow terminal.
 */
function connectOutput(stream: Readable, hooks: RunHooks, jobLog: Pick<JobLogFile, "write">): Promise<void> {
  const relieve = () => {
    if (hooks.congested()) setTimeout(relieve, CONGESTION_POLL_MS);
    else stream.resume();
  };
  const demux = new FrameDemuxer((name, c) => {
    jobLog.write(c);
    hooks.output(name, c);
    if (hooks.congested() && !stream.isPaused()) {
      stream.pause();
      setTimeout(relieve, CONGESTION_POLL_MS);
    }
  });
  const drained = new Promise<void>((resolve) => {
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.on("error", () => resolve());
  });
  stream.on("data", (c: Buffer) => demux.write(c));
  return drained;
}
