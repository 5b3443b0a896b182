import { AttemptSandbox, cpusMilli, envKey, REPO_LIMITS, repoKey, type AgentToCoordinator, type AttemptRef, type CoordinatorToAgent, type MessageOf, type UpgradeOrder, type UpgradeReport, type WarmCache, type WorkerCaps } from "../../protocol/index.ts";
import { Connection, type ConnectionOptions } from "./connection.ts";
import { LogSender } from "./log-sender.ts";
import type { Logger } from "./logger.ts";
import { DEFAULT_LOG_LIMITS, type LogLimits } from "./runner/log-collector.ts";
import { errorText } from "./runner/outcome.ts";
import type { JobRunner, RunOutcome, StopReason } from "./runner/runner.ts";
import { runProbe, type ProbeConfig } from "./probe.ts";
import { SlotGate } from "./slot-gate.ts";
import type { OpenAttempt } from "./tunnel/decide.ts";
import type { ContainerReach } from "./tunnel/reach.ts";
import { Tunnel } from "./tunnel/tunnel.ts";
import type { UpgradeSteps } from "./upgrade/bundle-store.ts";

export interface AgentOptions {
  url: string;
  token: string;
  name: string;
  slots: number;
  version: string;
  caps: WorkerCaps;
  logLimits?: LogLimits;
  connection?: Partial<Pick<ConnectionOptions, "backoff" | "wsOptions">>;
  /** Take one job, run it, and finish (for throwaway machines). */
  once?: boolean;
  probes?: ProbeConfig | null;
  /** An unacknowledged result is sent again this often until its `result_ack` comes (default 10 s). */
  resultResendMs?: number;
  /** How long after a reconnect a job's log and result wait for its `log_resume` (default RESUME_WAIT_MS). */
  resumeWaitMs?: number;
  /** How the tunnel reaches running jobs' containers; without it every tunnel stream is refused. */
  reach?: ContainerReach;
  /** Fetching and installing upgrades; without it (--once) an upgrade order is refused. */
  upgrades?: UpgradeSteps;
}

interface ActiveJob {
  ref: AttemptRef;
  stop: AbortController;
  done: Promise<void>;
}

type Assignment = MessageOf<CoordinatorToAgent, "assign_job">["payload"];
type ResultPayload = MessageOf<AgentToCoordinator, "job_result">["payload"];

interface Unacked {
  payload: ResultPayload;
  /** The next re-send. */
  timer: NodeJS.Timeout | null;
}

const keyOf = (r: AttemptRef) => `${r.job_id}#${r.attempt}`;

/** How long closing waits for the last results to be acknowledged. */
const CLOSE_ACK_WAIT_MS = 5000;

/**
 * The coordinator may fail to settle a result (a D1 write that failed) without the line
 * dropping; re-sending on a timer, not only after a reconnect, gets it settled then too.
 */
export const DEFAULT_RESULT_RESEND_MS = 10_000;


/** What a job that failed inside the agent itself, not in its container, reports. */
const failedInside = (err: unknown): RunOutcome => ({ exit_code: null, failure_reason: "internal", message: `the agent failed while running the job: ${errorText(err)}` });

/**
 * A compute node: keeps one connection to its pool's coordinator, runs the jobs it is given
 * through a JobRunner, streams their logs, and reports each result until it is acknowledged.
 */
export class Agent {
  private readonly connection: Connection;
  private readonly logs: LogSender;
  /** Jobs taken: running, preparing, or prefetched and waiting in `slots` for one to free. */
  private readonly active = new Map<string, ActiveJob>();
  private readonly slots: SlotGate;
  /** Streams into running jobs' containers, on the connection's binary frames. */
  private readonly tunnel: Tunnel;
  /** Attempts whose container runs, by key: what the tunnel may reach. */
  private readonly reachable = new Map<string, OpenAttempt>();
  /** Results sent but not yet acknowledged; re-sent after every reconnect and on a timer. */
  private readonly unacked = new Map<string, Unacked>();
  private draining = false;
  private closing: Promise<void> | null = null;
  private fatal: ((reason: string) => void) | null = null;
  private onceDone: (() => void) | null = null;
  /** The version an upgrade in progress goes to, and what is told once it is installed. */
  private upgrading: string | null = null;
  private upgraded: ((version: string) => void) | null = null;
  /** Called each time a job ends or a result is acknowledged: an upgrade waits for none to be left. */
  private onSettled: (() => void) | null = null;
  private tookOnce = false;
  /** What was last reported as warm; hello carries it, `warm_cache` updates it. */
  private warm: WarmCache = { envs: [], repos: [] };

  constructor(
    private readonly opts: AgentOptions,
    private readonly runner: JobRunner,
    private readonly log: Logger,
  ) {
    this.connection = new Connection({
      url: opts.url,
      token: opts.token,
      log,
      ...opts.connection,
      hello: () => ({
        agent_version: opts.version,
        name: opts.name,
        slots: opts.slots,
        caps: opts.caps,
        running: [...this.active.values()].map((j) => j.ref).concat([...this.unacked.values()].map(({ payload: { job_id, attempt } }) => ({ job_id, attempt }))),
        warm: this.warm,
        draining: this.draining,
      }),
      onMessage: (msg) => this.onMessage(msg),
      onFatal: (reason) => this.fatal?.(reason),
      onDrained: () => this.logs.drained(),
      onBinary: (frame) => this.tunnel.receive(frame),
      onDisconnected: () => this.tunnel.disconnected(),
    });
    this.tunnel = new Tunnel({
      send: (frame) => this.connection.sendBinary(frame),
      attempt: (jobId, attempt) => this.reachable.get(keyOf({ job_id: jobId, attempt })),
      reach: opts.reach ?? null,
      log,
    });
    this.slots = new SlotGate(opts.slots, opts.caps);
    // A result held for its log's resume goes out once the re-sent lines are on the socket before it.
    this.logs = new LogSender(this.connection, opts.logLimits ?? DEFAULT_LOG_LIMITS, Date.now, (ref) => this.sendResult(keyOf(ref)), opts.resumeWaitMs);
  }

  /**
   * Cleans up after a crashed predecessor, then dials. Resolves with a reason if refused for
   * good. A step that fails (the engine not answering) is logged and the agent starts anyway:
   * jobs then fail with a reason rather than the agent being away.
   */
  async start(): Promise<{ fatal: Promise<string>; finished: Promise<void>; upgraded: Promise<string> }> {
    const removed = await this.tryStep("could not remove what an earlier run left", () => this.runner.cleanupLeftovers());
    if (removed) this.log.warn("removed containers left by an earlier run", { count: removed });
    this.warm = (await this.tryStep("could not list warm caches", () => this.runner.warm())) ?? this.warm;
    const missing = (await this.tryStep("could not check the runner images", () => this.runner.missingImages())) ?? [];
    if (missing.length) this.log.warn("runner images are missing; jobs that need them fail with image_error. Build them with `npm run images`", { missing });
    await this.tryStep("could not begin prestarting sandboxes", () => this.runner.start());
    const fatal = new Promise<string>((resolve) => (this.fatal = resolve));
    // Resolves only in --once mode, after the one job's result is acknowledged.
    const finished = new Promise<void>((resolve) => (this.onceDone = resolve));
    // Resolves once an ordered bundle is installed and no job is left: the process exits for its service manager to start that bundle.
    const upgraded = new Promise<string>((resolve) => (this.upgraded = resolve));
    this.connection.start();
    this.log.info("agent started", { name: this.opts.name, version: this.opts.version, slots: this.opts.slots, url: this.opts.url, once: Boolean(this.opts.once) });
    return { fatal, finished, upgraded };
  }

  /** Stops every running job for `reason`; each is reported as its stop reason classifies it. */
  stopAll(reason: StopReason): void {
    for (const job of this.active.values()) job.stop.abort(reason);
  }

  /**
   * Stops taking jobs, lets running ones finish for up to `graceMs`, stops the rest, reports
   * every result it can, and disconnects. Safe to call more than once.
   */
  close(graceMs = 0): Promise<void> {
    // Every step runs even when one before it failed, so a runner that cannot close still leaves the line shut.
    this.closing ??= (async () => {
      this.draining = true;
      await this.tryStep("could not say it drains", () => this.connection.send({ type: "draining", payload: {} }));
      const runnerClosed = this.tryStep("the runner did not close cleanly", () => this.runner.close());
      await this.tryStep("could not stop the running jobs", async () => {
        const all = () => Promise.all([...this.active.values()].map((j) => j.done));
        if (!this.active.size) return;
        this.log.info("draining: waiting for running jobs", { running: this.active.size, grace_ms: graceMs });
        const timer = new Promise((r) => setTimeout(r, graceMs).unref());
        await Promise.race([all(), timer]);
        for (const job of this.active.values()) job.stop.abort("drain" satisfies StopReason);
        // Logs with no line to go out on do not hold the close (a job's result waits for its log).
        const abandon = setTimeout(() => this.logs.abandon(), CLOSE_ACK_WAIT_MS);
        await all();
        clearTimeout(abandon);
      });
      const deadline = Date.now() + CLOSE_ACK_WAIT_MS;
      while (this.unacked.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await runnerClosed;
      await this.tryStep("could not close the connection", () => this.connection.close());
      for (const u of this.unacked.values()) if (u.timer) clearTimeout(u.timer);
    })();
    return this.closing;
  }

  /** Runs one step of starting or stopping; a failure is logged, and the result is undefined. */
  private async tryStep<T>(failed: string, step: () => T | Promise<T>): Promise<T | undefined> {
    try {
      return await step();
    } catch (err) {
      this.log.warn(failed, { err });
      return undefined;
    }
  }

  private onMessage(msg: CoordinatorToAgent): void {
    switch (msg.type) {
      case "hello_ack":
        this.log.info("connected", { worker_id: msg.payload.worker_id, draining: msg.payload.draining });
        // Lines handed to the old socket may not have reached the coordinator: each job's log and result wait for its log_resume.
        this.logs.reconnected();
        for (const key of this.unacked.keys()) this.sendResult(key);
        void this.confirmBundle();
        return;
      case "log_resume":
        return this.logs.resume(msg.payload, msg.payload.after_seq);
      case "assign_job":
        return this.accept(msg.payload);
      case "cancel_job":
        // A stale attempt gets no log_resume: its result (fenced there) need not wait for one.
        if (msg.payload.reason === "stale") this.logs.stopHolding(msg.payload);
        this.active.get(keyOf(msg.payload))?.stop.abort(msg.payload.reason satisfies StopReason);
        return;
      case "result_ack": {
        const key = keyOf(msg.payload);
        const acked = this.unacked.get(key);
        if (acked?.timer) clearTimeout(acked.timer);
        this.unacked.delete(key);
        this.logs.forget(msg.payload);
        if (this.tookOnce && this.active.size === 0 && this.unacked.size === 0) this.onceDone?.();
        this.onSettled?.();
        return;
      }
      case "upgrade":
        return void this.upgrade(msg.payload);
      case "drain":
        this.log.info("an operator drained this worker: it takes no new jobs");
        return;
      case "probe": {
        const { probe_id, command, timeout_s } = msg.payload;
        void runProbe(this.opts.probes ?? null, command, timeout_s).then((result) => {
          // The audit trail on this machine; the control plane keeps its own record.
          this.log.info("probe", { probe_id, command, status: result.status, exit_code: result.exit_code });
          this.connection.send({ type: "probe_result", payload: { probe_id, ...result } });
        });
        return;
      }
      case "heartbeat_ack":
      case "error":
        return;
    }
  }

  private accept(assignment: Assignment): void {
    const ref = assignment;
    const key = keyOf({ job_id: ref.job_id, attempt: ref.attempt });
    const attemptRef = { job_id: ref.job_id, attempt: ref.attempt };
    // A re-sent assignment: one we run is taken again (its first word may have been lost); a finished one's result is on its way.
    if (this.active.has(key)) {
      this.connection.send({ type: "job_accepted", payload: attemptRef });
      return;
    }
    if (this.unacked.has(key)) return;
    // Up to the prefetch depth it advertised beyond its slots: those wait, prepared, for a slot.
    if (this.draining || this.active.size >= this.opts.slots + (this.opts.caps.prefetch ?? 0)) {
      this.report(attemptRef, { exit_code: null, failure_reason: "canceled_by_worker", message: this.draining ? "the worker is shutting down" : "the worker had no free slot" });
      return;
    }
    if (this.opts.once) {
      // One job only: from now on the coordinator sees this worker draining.
      this.tookOnce = true;
      this.draining = true;
      this.connection.send({ type: "draining", payload: {} });
    }
    const stop = new AbortController();
    const job: ActiveJob = { ref: attemptRef, stop, done: Promise.resolve() };
    this.active.set(key, job);
    // Before any preparing, which may take long (a download, an image build): the coordinator knows the job is here.
    this.connection.send({ type: "job_accepted", payload: attemptRef });
    const task = assignment.spec.task;
    // Say at once that this environment is coming here, so its next job follows it rather than building elsewhere.
    if (task.kind === "repo") this.reportWarm({ envs: [envKey(task.repo), ...this.warm.envs], repos: [repoKey(task.repo.code_repo_url), ...this.warm.repos] });
    job.done = this.execute(attemptRef, assignment, stop.signal)
      .catch(async (err: unknown) => {
        this.log.error("the job failed inside the agent", { job_id: attemptRef.job_id, attempt: attemptRef.attempt, err });
        await this.logs.finish(attemptRef);
        this.report(attemptRef, failedInside(err));
      })
      .finally(() => {
        this.slots.release(key);
        this.active.delete(key);
        this.onSettled?.();
        if (task.kind === "repo") void this.runner.warm().then((w) => this.reportWarm(w), (err: unknown) => this.log.warn("could not list warm caches", { err }));
      });
  }

  /** After a hello is accepted: the bundle on trial is confirmed, and a rollback the launcher made is told. */
  private async confirmBundle(): Promise<void> {
    const rollback = await this.tryStep("could not read or write the bundle record", () => this.opts.upgrades?.connected() ?? null);
    if (rollback) {
      this.log.warn("the upgrade was rolled back", { version: rollback.version, reason: rollback.reason });
      this.connection.send({ type: "upgrade_status", payload: rollback });
    }
  }

  /**
   * An upgrade order: fetch and check the bundle first (a refused one leaves this agent as it
   * was, taking jobs), then drain, let every job finish and its result be acknowledged, install
   * it, and end the process for its service manager to start the new bundle.
   */
  private async upgrade(order: UpgradeOrder): Promise<void> {
    if (this.upgrading !== null || this.closing) return;
    const say = (state: UpgradeReport["state"], reason: string | null = null) => this.connection.send({ type: "upgrade_status", payload: { version: order.version, state, reason } });
    const steps = this.opts.upgrades;
    if (!steps) return say("failed", "a --once agent does not upgrade itself");
    this.upgrading = order.version;
    this.log.info("upgrading: fetching the new bundle", { from: this.opts.version, to: order.version });
    say("downloading");
    try {
      await steps.fetch(order);
    } catch (err) {
      this.log.warn("the upgrade's bundle was refused; staying on this version", { version: order.version, err });
      this.upgrading = null;
      return say("failed", errorText(err));
    }
    say("draining");
    this.draining = true;
    this.connection.send({ type: "draining", payload: {} });
    await new Promise<void>((resolve) => {
      const check = () => {
        if (this.active.size > 0 || this.unacked.size > 0) return;
        this.onSettled = null;
        resolve();
      };
      this.onSettled = check;
      check();
    });
    try {
      await steps.install(order);
    } catch (err) {
      // Drained already: a restart into this same version is what takes jobs again.
      say("failed", `could not install the bundle: ${errorText(err)}`);
      this.upgraded?.(this.opts.version);
      return;
    }
    say("restarting");
    this.upgraded?.(order.version);
  }

  /** Sends the warm set when it changed (deduplicated, most recent first, bounded). */
  private reportWarm(next: WarmCache): void {
    const bounded = (keys: string[]) => [...new Set(keys)].slice(0, REPO_LIMITS.warm_entries);
    const warm = { envs: bounded(next.envs), repos: bounded(next.repos) };
    if (JSON.stringify(warm) === JSON.stringify(this.warm)) return;
    this.warm = warm;
    this.connection.sendIfReady({ type: "warm_cache", payload: warm });
  }

  private async execute(ref: AttemptRef, assignment: Assignment, stop: AbortSignal): Promise<void> {
    const spec = assignment.spec;
    const log = this.log.child({ job_id: ref.job_id, attempt: ref.attempt });
    const logMaxBytes = assignment.log_max_bytes ?? (this.opts.logLimits ?? DEFAULT_LOG_LIMITS).jobBytes;
    const jobLog = this.logs.open(ref, logMaxBytes);
    log.info("job assigned", { kind: spec.task.kind });
    let result: RunOutcome;
    try {
      result = await this.runner.run(
        { jobId: ref.job_id, attempt: ref.attempt, spec, gpuIndices: assignment.gpu_indices, inputs: assignment.inputs, credentials: assignment.credentials, secretEnv: assignment.secret_env, sandbox: assignment.sandbox ?? AttemptSandbox.parse({}), logMaxBytes },
        {
          started: (resolved) => this.connection.send({ type: "job_started", payload: { ...ref, resolved } }),
          output: (stream, chunk) => (stream === "system" ? jobLog.system(chunk.toString()) : jobLog.write(stream, chunk)),
          system: (text) => jobLog.system(text),
          congested: () => jobLog.congested(),
          slot: () => this.slots.take(keyOf(ref), { cpusMilli: cpusMilli(spec.requirements.cpus), memoryMb: spec.requirements.memory_mb }, stop),
          exited: () => {
            this.slots.release(keyOf(ref));
            this.unreachable(ref);
          },
          reachable: (container) => this.reachable.set(keyOf(ref), { container, ports: spec.ports, exec: (assignment.sandbox ?? AttemptSandbox.parse({})).exec }),
        },
        stop,
      );
    } catch (err) {
      log.error("the runner failed", { err });
      result = failedInside(err);
    }
    this.unreachable(ref);
    // The result follows the whole log, so a reader that sees the job end has seen all of it.
    await this.logs.finish(ref, result.message && result.failure_reason ? `[gridx: ${result.failure_reason}: ${result.message}]` : null);
    log.info("job finished", { exit_code: result.exit_code, failure_reason: result.failure_reason });
    this.report(ref, result);
  }

  /** The attempt's container is gone: no stream may reach it, and those open are reset. */
  private unreachable(ref: AttemptRef): void {
    const key = keyOf(ref);
    const held = this.reachable.get(key);
    this.reachable.delete(key);
    this.tunnel.attemptEnded(ref.job_id, ref.attempt, held?.container);
  }

  private report(ref: AttemptRef, result: RunOutcome): void {
    const key = keyOf(ref);
    this.unacked.set(key, { payload: { ...ref, ...result }, timer: null });
    this.sendResult(key);
  }

  /** Sends a result now, and again every `resultResendMs` until it is acknowledged. */
  private sendResult(key: string): void {
    const entry = this.unacked.get(key);
    if (!entry) return;
    // Not before the lines a reconnect makes it re-send: a stored result fences them out. The hold's end sends it.
    if (!this.logs.holding(entry.payload)) this.connection.sendIfReady({ type: "job_result", payload: entry.payload });
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.sendResult(key), this.opts.resultResendMs ?? DEFAULT_RESULT_RESEND_MS).unref();
  }
}
