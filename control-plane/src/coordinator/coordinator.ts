import { DurableObject } from "cloudflare:workers";
import {
  AgentToCoordinator,
  CoordinatorToAgent,
  decodeFrame,
  encode,
  ErrorCode,
  HEARTBEAT_ACK_FRAME,
  HEARTBEAT_FRAME,
  envKey,
  repoKey,
  type AttemptRef,
  type JobSpec,
  type MessageOf,
  packFrames,
  type RepoCredentials,
  type ResolvedCommits,
} from "../../../protocol/index.ts";
import { createDb, type Db } from "../db/client.ts";
import {
  cancelQueued,
  failQueued,
  getAttempt,
  hasUnfinishedJobs,
  holdingAttempts,
  pastDeadline,
  queuedJobs,
  storeAssignments,
  AttemptWrites,
  type AttemptWithJob,
} from "../db/attempts.ts";
import { datasetsByIds } from "../db/datasets.ts";
import { getJob, type JobRow } from "../db/jobs.ts";
import { ObjectStore } from "../storage/object-store.ts";
import { chunkRows } from "../db/logs.ts";
import { finishProbe } from "../db/probes.ts";
import { getSecret } from "../db/secrets.ts";
import { SecretVault } from "../secrets/vault.ts";
import { logChunks } from "../db/schema.ts";
import { markOfflineExcept, setDrain, setOffline, setWarm, silentSince, touchWorkers, upsertWorker, workersByIds } from "../db/workers.ts";
import type { Bindings } from "../env.ts";
import { policyFor, settingsOf, type Settings } from "../settings.ts";
import { isTerminal, nextJobState, type JobEvent } from "./job-state.ts";
import { PoolLedger } from "./ledger.ts";
import { judgement, judgeSocket } from "./liveness.ts";
import { initialSchedulerState, planDispatch } from "./scheduler.ts";
import { CloseCode, sessionOf, setSession, type Session } from "./sessions.ts";

type AgentMessage<T extends AgentToCoordinator["type"]> = MessageOf<AgentToCoordinator, T>["payload"];
/** An agent's report that changes a job's state, from the worker that sent it. */
type Settlement = { type: "job_started"; workerId: string; payload: AgentMessage<"job_started"> } | { type: "job_result"; workerId: string; payload: AgentMessage<"job_result"> };

/** Starts and results written in one group write, at most. */
const SETTLE_BATCH = 200;

/** How long past a probe's own timeout the coordinator waits for the agent's answer. */
const PROBE_ANSWER_SLACK_S = 10;

/** Jobs read per scheduling round at most; more wait for the next round. */
const DISPATCH_BATCH = 500;

/**
 * A round reads this many queued jobs per free slot (at least DISPATCH_MIN_READ): while jobs
 * flow, a round follows every few results with a handful of slots free, and reading the
 * whole batch each time made decoding rows the coordinator's largest cost. The margin lets
 * jobs that fit nowhere yet be passed over for ones behind them.
 */
const READ_PER_FREE_SLOT = 4;
const DISPATCH_MIN_READ = 32;

/**
 * One per pool. Holds the pool's agent sockets (hibernatable), schedules its queued jobs and
 * is the only writer of its jobs' states, so each change is a read-decide-write with no
 * other writer in between. D1 is the record: everything here can be rebuilt from it.
 */
export class Coordinator extends DurableObject<Bindings> {
  private readonly db: Db;
  private readonly settings: Settings;
  private pool: string | null = null;
  private scheduler = initialSchedulerState();
  private serial: Promise<unknown> = Promise.resolve();
  private dispatching = false;
  private dispatchAgain = false;
  /** Per-socket message order (see webSocketMessage). */
  private readonly socketQueues = new Map<WebSocket, Promise<void>>();
  /** Probes waiting for their agent's answer. */
  private readonly probeWaiters = new Map<string, () => void>();
  /** Starts and results waiting for the next group write (see settle). */
  private readonly settlements: { event: Settlement; done: () => void; fail: (err: unknown) => void }[] = [];
  private settleQueued = false;
  /** Each connected worker's socket; built from the sockets' sessions on first use after a wake. */
  private workerSockets: Map<string, WebSocket> | null = null;
  /** Connected workers and their held attempts; built from D1 on first use after a (re)start. */
  private ledgerLoad: Promise<PoolLedger> | null = null;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.db = createDb(env.DB);
    this.settings = settingsOf(env);
    // Heartbeats are answered by the runtime, so an idle pool's object can stay hibernated.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_FRAME, HEARTBEAT_ACK_FRAME));
    void ctx.blockConcurrencyWhile(async () => {
      this.pool = (await ctx.storage.get<string>("pool")) ?? null;
    });
  }

  // ---- entry points: the API worker calls these ------------------------------------------

  /** An agent's WebSocket, already authenticated by the API worker. */
  override async fetch(request: Request): Promise<Response> {
    const pool = request.headers.get("x-gridx-pool");
    const tokenId = request.headers.get("x-gridx-token-id");
    if (!pool || !tokenId || request.headers.get("upgrade") !== "websocket") {
      return new Response("expected an agent WebSocket upgrade", { status: 400 });
    }
    await this.bindPool(pool);
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    setSession(server, { tokenId, workerId: null, connectedAt: Date.now() });
    await this.ensureAlarm();
    return new Response(null, { status: 101, webSocket: client });
  }

  /** A job was queued in this pool. */
  async jobQueued(pool: string): Promise<void> {
    await this.bindPool(pool);
    await this.ensureAlarm();
    this.dispatch();
  }

  /** Cancels a job; a running container is killed by its agent. Returns the job after. */
  async cancelJob(pool: string, jobId: string): Promise<JobRow | null> {
    await this.bindPool(pool);
    return this.exclusive(async () => {
      const job = await getJob(this.db, jobId);
      if (!job || isTerminal(job.status)) return job ?? null;
      const now = Date.now();
      if (job.status === "queued") {
        await cancelQueued(this.db, jobId, now);
      } else {
        const attempt = await getAttempt(this.db, jobId, job.attempt);
        if (attempt) await this.endAttempt(attempt, { type: "cancel" }, "canceling", "canceled by user", now);
        if (job.workerId) this.send(job.workerId, { type: "cancel_job", payload: { job_id: jobId, attempt: job.attempt, reason: "user" } });
      }
      return (await getJob(this.db, jobId)) ?? null;
    });
  }

  /** Stops (or resumes) giving a worker new jobs; its running jobs go on. */
  async setWorkerDrain(pool: string, workerId: string, drain: boolean): Promise<void> {
    await this.bindPool(pool);
    await this.exclusive(() => this.setDrain(workerId, drain ? "operator" : null));
    if (drain) this.send(workerId, { type: "drain", payload: {} });
    else this.dispatch();
  }

  /**
   * Sends an operator's probe to a worker and waits for the answer (or the timeout). The
   * outcome is written to the probe's audit record either way.
   */
  async runProbe(pool: string, probe: { id: string; workerId: string; command: string; timeoutS: number }): Promise<void> {
    await this.bindPool(pool);
    const answered = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), (probe.timeoutS + PROBE_ANSWER_SLACK_S) * 1000);
      this.probeWaiters.set(probe.id, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    const sent = this.send(probe.workerId, { type: "probe", payload: { probe_id: probe.id, command: probe.command, timeout_s: probe.timeoutS } });
    if (!sent) {
      this.probeWaiters.delete(probe.id);
      await finishProbe(this.db, probe.id, { status: "failed", exitCode: null, output: null, truncated: false, error: "the worker is not connected" }, Date.now());
      return;
    }
    if (!(await answered)) {
      await finishProbe(this.db, probe.id, { status: "timeout", exitCode: null, output: null, truncated: false, error: "no answer from the agent in time" }, Date.now());
    }
    this.probeWaiters.delete(probe.id);
  }

  // ---- agent sockets ------------------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    // One socket's frames are handled in the order they came: a result must never overtake
    // the log lines sent before it while a D1 write is in flight.
    const previous = this.socketQueues.get(ws) ?? Promise.resolve();
    const handled = previous.then(() => this.handleFrame(ws, raw));
    this.socketQueues.set(ws, handled);
    await handled;
    if (this.socketQueues.get(ws) === handled) this.socketQueues.delete(ws);
  }

  /**
   * Handles a frame's messages in order. Consecutive starts and results go to one group write
   * together, and the results are acknowledged together once it is stored; any other message
   * waits for the reports before it.
   */
  private async handleFrame(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const reports: Promise<void>[] = [];
    const acks: CoordinatorToAgent[] = [];
    const settleReports = async () => {
      if (reports.length === 0) return;
      await Promise.all(reports.splice(0));
      this.sendOn(ws, acks.splice(0));
      this.dispatch();
    };
    try {
      if (typeof raw !== "string") return this.reply(ws, ErrorCode.badMessage, "frames are JSON text");
      for (const decoded of decodeFrame(raw, AgentToCoordinator)) {
        if (!decoded.ok) {
          this.reply(ws, decoded.code, decoded.message);
          if (decoded.code === ErrorCode.protocolVersion) return ws.close(CloseCode.protocolVersion, "protocol version unsupported");
          continue;
        }
        const msg = decoded.message;
        const workerId = sessionOf(ws)?.workerId;
        if (workerId && (msg.type === "job_started" || msg.type === "job_result")) {
          reports.push(this.settle({ ...msg, workerId }));
          if (msg.type === "job_result") acks.push({ type: "result_ack", payload: { job_id: msg.payload.job_id, attempt: msg.payload.attempt } });
          continue;
        }
        await settleReports();
        await this.handleMessage(ws, msg);
      }
      await settleReports();
    } catch (err) {
      console.error(`coordinator(${this.pool}): message handling failed`, err);
      this.reply(ws, ErrorCode.internal, "the coordinator could not handle that message; it will be retried on reconnect");
    }
  }

  private async handleMessage(ws: WebSocket, msg: AgentToCoordinator): Promise<void> {
    const session = sessionOf(ws);
    if (!session) return;
    if (msg.type === "hello") return await this.exclusive(() => this.onHello(ws, session, msg.payload));
    if (msg.type === "heartbeat") return void ws.send(HEARTBEAT_ACK_FRAME);
    const workerId = session.workerId;
    if (!workerId) return this.reply(ws, ErrorCode.badMessage, "send hello first");
    switch (msg.type) {
      case "job_log":
        return await this.onLog(msg.payload);
      case "draining":
        return await this.exclusive(() => this.setDrain(workerId, "agent"));
      case "warm_cache":
        return await this.exclusive(async () => {
          await setWarm(this.db, workerId, msg.payload);
          (await this.ledger()).update(workerId, { warm: msg.payload });
        });
      case "probe_result": {
        const r = msg.payload;
        await finishProbe(this.db, r.probe_id, { status: r.status, exitCode: r.exit_code, output: r.output, truncated: r.truncated, error: r.error }, Date.now());
        this.probeWaiters.get(r.probe_id)?.();
        return;
      }
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // already closed
    }
    await this.forget(ws);
  }

  override async webSocketError(ws: WebSocket, err: unknown): Promise<void> {
    console.error(`coordinator(${this.pool}): socket error`, err);
    await this.forget(ws);
  }

  // ---- the sweep ----------------------------------------------------------------------------

  /**
   * Runs every few seconds while the pool has sockets or unfinished jobs: drops silent
   * sockets, records liveness, requeues the jobs of workers gone too long, enforces job
   * deadlines, and schedules.
   */
  override async alarm(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    const now = Date.now();
    const limits = { helloTimeoutMs: this.settings.HELLO_TIMEOUT_S * 1000, workerTimeoutMs: this.settings.WORKER_TIMEOUT_S * 1000 };
    const seen: { id: string; at: number }[] = [];
    for (const ws of this.ctx.getWebSockets()) {
      const session = sessionOf(ws);
      if (!session) continue;
      const verdict = judgeSocket({ session, lastHeartbeat: this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? null }, now, limits);
      if (verdict.kind === "hello_timeout") ws.close(CloseCode.helloTimeout, "no hello in time");
      else if (verdict.kind === "silent") {
        ws.close(CloseCode.heartbeatTimeout, "no heartbeat in time");
        await this.forget(ws);
      } else if (session.workerId) seen.push({ id: session.workerId, at: verdict.lastSeen });
    }
    const clock = await this.ctx.storage.get<{ lastSweepAt: number; graceUntil: number | null }>("sweep");
    const { judge, graceUntil } = judgement({ now, lastSweepAt: clock?.lastSweepAt ?? null, graceUntil: clock?.graceUntil ?? null, sweepMs: this.sweepMs(), workerTimeoutMs: limits.workerTimeoutMs });
    await this.ctx.storage.put("sweep", { lastSweepAt: now, graceUntil });
    await this.exclusive(async () => {
      await touchWorkers(this.db, seen);
      await markOfflineExcept(this.db, pool, this.connectedWorkerIds());
      if (!judge) return;
      await this.requeueLostWorkers(pool, now - limits.workerTimeoutMs);
      await this.enforceDeadlines(pool, now);
    });
    this.dispatch();
    await this.ensureAlarm(true);
  }

  // ---- handlers -----------------------------------------------------------------------------

  private async onHello(ws: WebSocket, session: Session, hello: AgentMessage<"hello">): Promise<void> {
    const pool = this.pool!;
    const now = Date.now();
    const worker = await upsertWorker(this.db, { pool, name: hello.name, tokenId: session.tokenId, caps: hello.caps, slots: hello.slots, agentVersion: hello.agent_version, warm: hello.warm, now });
    const sockets = this.sockets();
    const other = sockets.get(worker.id);
    if (other && other !== ws) {
      setSession(other, { ...sessionOf(other)!, workerId: null });
      other.close(CloseCode.replaced, "replaced by a newer connection of the same worker");
    }
    setSession(ws, { ...session, workerId: worker.id, batchFrames: hello.batch_frames });
    sockets.set(worker.id, ws);
    ws.send(encode({ type: "hello_ack", payload: { worker_id: worker.id, heartbeat_interval_s: this.settings.HEARTBEAT_INTERVAL_S, draining: worker.drain !== null, batch_frames: true } }));
    const held = await holdingAttempts(this.db, [worker.id]);
    (await this.ledger()).join(worker, held);
    await this.reconcile(worker.id, held, hello.running, now);
    this.dispatch();
  }

  /**
   * Brings the record and a reconnected agent into agreement: an assignment the agent never
   * got is sent again, a job it lost is requeued, and a job it runs that is no longer its
   * to run is canceled.
   */
  private async reconcile(workerId: string, held: AttemptWithJob[], reported: AttemptRef[], now: number): Promise<void> {
    const key = (r: { job_id: string; attempt: number } | { jobId: string; attempt: number }) => ("job_id" in r ? r.job_id : r.jobId) + "#" + r.attempt;
    const reportedKeys = new Set(reported.map(key));
    const heldKeys = new Set(held.map(key));
    for (const a of held) {
      if (reportedKeys.has(key(a))) continue;
      if (a.status === "assigned") await this.sendAssignment(a);
      else if (a.status === "canceling") await this.commit((w) => w.end(a, { status: "finished", exitCode: null, failureReason: null }, null, now));
      else await this.endAttempt(a, { type: "lost", retriesLeft: a.jobAttempt <= a.maxRetries }, "lost", `attempt ${a.attempt} was lost: its agent restarted without it`, now);
    }
    for (const r of reported) {
      if (!heldKeys.has(key(r))) this.send(workerId, { type: "cancel_job", payload: { ...r, reason: "stale" } });
    }
  }

  /**
   * Waits for an agent's start or result to be written. Events that arrive while a write is
   * in flight are written together in the next one (group commit): one read of their attempts,
   * one batch of writes, so the pool's throughput does not pay two D1 round trips per event.
   */
  private settle(event: Settlement): Promise<void> {
    return new Promise((done, fail) => {
      this.settlements.push({ event, done, fail });
      this.flushSettlements();
    });
  }

  private flushSettlements(): void {
    if (this.settleQueued) return;
    this.settleQueued = true;
    void this.exclusive(async () => {
      this.settleQueued = false;
      const taken = this.settlements.splice(0, SETTLE_BATCH);
      if (taken.length === 0) return;
      try {
        await this.applySettlements(taken.map((t) => t.event));
        taken.forEach((t) => t.done());
      } catch (err) {
        taken.forEach((t) => t.fail(err));
      }
      if (this.settlements.length) this.flushSettlements();
    });
  }

  /**
   * Decides each event against its attempt as the events before it in the batch left it, in
   * arrival order, and writes them in one batch.
   */
  private async applySettlements(events: Settlement[]): Promise<void> {
    const ledger = await this.ledger();
    const now = Date.now();
    await this.commit((writes) => {
      const latest = new Map<string, AttemptWithJob>();
      for (const e of events) {
        const key = `${e.payload.job_id}#${e.payload.attempt}`;
        const a = latest.get(key) ?? ledger.attempt(e.payload.job_id, e.payload.attempt);
        if (!a || a.workerId !== e.workerId) continue;
        if (e.type === "job_started") {
          if (a.status === "assigned") latest.set(key, writes.start(a, now, now + (a.timeoutS + this.settings.DEADLINE_GRACE_S) * 1000, e.payload.resolved ?? null));
          continue;
        }
        const r = e.payload;
        if (a.status === "canceling") {
          latest.set(key, writes.end(a, { status: "finished", exitCode: r.exit_code, failureReason: r.failure_reason }, null, now));
        } else if (a.status === "assigned" || a.status === "running") {
          latest.set(key, this.end(writes, a, { type: "result", exitCode: r.exit_code, failureReason: r.failure_reason }, "finished", r.message, now, r.exit_code, r.resolved));
        }
      }
    });
  }

  private async onLog(log: AgentMessage<"job_log">): Promise<void> {
    const rows = chunkRows(log.job_id, log.attempt, log.seq, log.lines);
    // A resent batch (after a reconnect) lands on the same key and is dropped.
    await this.db.batch(rows.map((row) => this.db.insert(logChunks).values(row).onConflictDoNothing()) as [never, ...never[]]);
  }

  /** Ends one attempt and moves its job as the state machine says. */
  private async endAttempt(a: AttemptWithJob, event: JobEvent, attemptStatus: "finished" | "lost" | "canceling", message: string | null, now: number) {
    await this.commit((writes) => this.end(writes, a, event, attemptStatus, message, now));
  }

  /** Adds an attempt's end to a batch, with its job's move when it is the job's latest. */
  private end(
    writes: AttemptWrites,
    a: AttemptWithJob,
    event: JobEvent,
    attemptStatus: "finished" | "lost" | "canceling",
    message: string | null,
    now: number,
    exitCode: number | null = null,
    resolved?: ResolvedCommits,
  ): AttemptWithJob {
    const transition = a.jobAttempt === a.attempt ? nextJobState(a.jobStatus, event) : null;
    const failureReason = event.type === "result" ? event.failureReason : event.type === "lost" ? "worker_lost" : event.type === "timeout" ? "timeout" : null;
    return writes.end(a, { status: attemptStatus, exitCode, failureReason }, transition && { ...transition, message, resolved }, now);
  }

  private async requeueLostWorkers(pool: string, cutoff: number): Promise<void> {
    const connected = new Set(this.connectedWorkerIds());
    const silent = (await silentSince(this.db, pool, cutoff)).map((w) => w.id).filter((id) => !connected.has(id));
    for (const a of await holdingAttempts(this.db, silent)) {
      const now = Date.now();
      if (a.status === "canceling") await this.commit((w) => w.end(a, { status: "lost", exitCode: null, failureReason: "worker_lost" }, null, now));
      else await this.endAttempt(a, { type: "lost", retriesLeft: a.jobAttempt <= a.maxRetries }, "lost", `attempt ${a.attempt} was lost: worker ${a.workerId} went silent`, now);
    }
  }

  /** The coordinator's backstop for an agent that did not enforce a job's timeout. */
  private async enforceDeadlines(pool: string, now: number): Promise<void> {
    for (const a of await pastDeadline(this.db, pool, now)) {
      await this.endAttempt(a, { type: "timeout" }, "canceling", "the job ran past its timeout and the agent did not stop it", now);
      this.send(a.workerId, { type: "cancel_job", payload: { job_id: a.jobId, attempt: a.attempt, reason: "timeout" } });
    }
  }

  // ---- scheduling ---------------------------------------------------------------------------

  /** Schedules until nothing more fits; calls made meanwhile fold into one more round. */
  private dispatch(): void {
    if (this.dispatching) {
      this.dispatchAgain = true;
      return;
    }
    this.dispatching = true;
    const run = async () => {
      try {
        do {
          this.dispatchAgain = false;
          await this.exclusive(() => this.dispatchRound());
        } while (this.dispatchAgain);
      } catch (err) {
        console.error(`coordinator(${this.pool}): dispatch failed`, err);
      } finally {
        this.dispatching = false;
      }
    };
    this.ctx.waitUntil(run());
  }

  private async dispatchRound(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    const ledger = await this.ledger();
    const views = ledger.views();
    const free = views.reduce((n, w) => n + (w.draining ? 0 : Math.max(0, w.slots - w.used.slots)), 0);
    if (free === 0) return;
    const limit = Math.min(DISPATCH_BATCH, Math.max(DISPATCH_MIN_READ, free * READ_PER_FREE_SLOT));
    const queued = await this.withoutUnreadyInputs(await queuedJobs(this.db, pool, limit));
    if (queued.length === 0) return;
    const byId = new Map(queued.map((j) => [j.id, j]));
    const plan = planDispatch(
      queued.map(({ id, spec: { task, requirements } }) => ({
        id,
        requirements,
        affinity: task.kind === "repo" ? { env: envKey(task.repo), repo: repoKey(task.repo.code_repo_url) } : undefined,
      })),
      views,
      policyFor(this.settings, pool),
      this.scheduler,
    );
    this.scheduler = plan.state;
    const stored = await storeAssignments(this.db, plan.assignments.map((assignment) => ({ assignment, job: byId.get(assignment.jobId)! })), Date.now());
    const outgoing = new Map<string, CoordinatorToAgent[]>();
    for (const { job, attempt } of stored) {
      ledger.record(attempt);
      const assignment = await this.assignment(job.id, attempt.attempt, job.spec, attempt.gpuIndices);
      const batch = outgoing.get(attempt.workerId) ?? [];
      batch.push(assignment);
      outgoing.set(attempt.workerId, batch);
    }
    for (const [workerId, messages] of outgoing) this.send(workerId, ...messages);
    if (stored.length === limit) this.dispatchAgain = true;
  }

  private async sendAssignment(a: AttemptWithJob): Promise<void> {
    const job = await getJob(this.db, a.jobId);
    if (!job) return;
    this.send(a.workerId, await this.assignment(a.jobId, a.attempt, job.spec as JobSpec, a.gpuIndices));
  }

  /** An assignment, with presigned downloads of the job's inputs issued for this attempt. */
  private async assignment(jobId: string, attempt: number, spec: JobSpec, gpuIndices: number[]): Promise<CoordinatorToAgent> {
    const inputs = [];
    if (spec.inputs.length) {
      const store = new ObjectStore(this.env.BUCKET, this.settings);
      const rows = new Map((await datasetsByIds(this.db, spec.inputs.map((i) => i.dataset))).map((d) => [d.id, d]));
      for (const input of spec.inputs) {
        const d = rows.get(input.dataset);
        if (!d) continue; // deleted since dispatch: the agent reports the input missing
        inputs.push({ dataset: d.id, path: input.path, url: (await store.presign("GET", d.key)).url, size: d.size, sha256: d.sha256 });
      }
    }
    const credentials = spec.task.kind === "repo" ? await this.credentialsFor(spec.task.repo) : undefined;
    return { type: "assign_job", payload: { job_id: jobId, attempt, spec, gpu_indices: gpuIndices, inputs, credentials } };
  }

  /**
   * Decrypts the project secrets a repo job names, for its assignment only. A secret deleted
   * since submission (or a vault that cannot open it) is left out: the agent's fetch then
   * fails and the job says so, rather than the queue stalling.
   */
  private async credentialsFor(repo: Extract<JobSpec["task"], { kind: "repo" }>["repo"]): Promise<RepoCredentials | undefined> {
    if (!repo.code_credentials && !repo.env_credentials) return undefined;
    try {
      const vault = await SecretVault.fromKey(this.env.SECRETS_KEY);
      const open = async (name: string | undefined) => {
        const row = name ? await getSecret(this.db, repo.project, name) : undefined;
        return row ? vault.open(repo.project, row.name, row.sealed) : undefined;
      };
      return { code: await open(repo.code_credentials), env: await open(repo.env_credentials) };
    } catch (err) {
      // Never the secret itself: only why it could not be opened.
      console.error(`coordinator(${this.pool}): project ${repo.project} secrets could not be opened`, err instanceof Error ? err.message : err);
      return undefined;
    }
  }

  /**
   * Fails, instead of scheduling, queued jobs whose datasets do not exist or are still
   * uploading: they could never start, and the user learns why at once.
   */
  private async withoutUnreadyInputs<J extends { id: string; spec: JobSpec }>(jobs: J[]): Promise<J[]> {
    const wanted = [...new Set(jobs.flatMap((j) => j.spec.inputs.map((i) => i.dataset)))];
    if (wanted.length === 0) return jobs;
    const ready = new Map((await datasetsByIds(this.db, wanted)).map((d) => [d.id, d.status]));
    // Without storage no input can be fetched; failing those jobs keeps them from wedging the queue.
    const storage = this.settings.S3_ENDPOINT && this.settings.S3_ACCESS_KEY_ID && this.settings.S3_SECRET_ACCESS_KEY;
    const kept: J[] = [];
    for (const job of jobs) {
      const problem = job.spec.inputs
        .map((i) =>
          !storage
            ? "cannot be fetched: object storage is not configured on this control plane"
            : !ready.has(i.dataset)
              ? `dataset ${i.dataset} does not exist`
              : ready.get(i.dataset) !== "ready"
                ? `dataset ${i.dataset} is still uploading`
                : null,
        )
        .find(Boolean);
      if (problem) await failQueued(this.db, job.id, "input_error", `input ${problem}`, Date.now());
      else kept.push(job);
    }
    return kept;
  }

  // ---- plumbing -----------------------------------------------------------------------------

  /** Writes the attempt changes `decide` makes in one batch, then records them in the ledger. */
  private async commit(decide: (writes: AttemptWrites) => unknown): Promise<void> {
    const writes = new AttemptWrites();
    decide(writes);
    const statements = writes.statements(this.db);
    if (statements.length) await this.db.$client.batch(statements);
    const ledger = await this.ledger();
    for (const a of writes.written) ledger.record(a);
  }

  /**
   * The ledger, read from D1 for the sockets held when first needed: the object may have been
   * evicted and woken for a hibernated socket. Used only inside exclusive().
   */
  private ledger(): Promise<PoolLedger> {
    if (this.ledgerLoad) return this.ledgerLoad;
    const load = (async () => {
      const ids = this.connectedWorkerIds();
      const [rows, held] = await Promise.all([workersByIds(this.db, ids), holdingAttempts(this.db, ids)]);
      const ledger = new PoolLedger();
      for (const w of rows) ledger.join(w, held.filter((a) => a.workerId === w.id));
      return ledger;
    })();
    // A failed read is tried again by the next caller.
    load.catch(() => {
      if (this.ledgerLoad === load) this.ledgerLoad = null;
    });
    return (this.ledgerLoad = load);
  }

  private async setDrain(workerId: string, drain: "operator" | "agent" | null): Promise<void> {
    await setDrain(this.db, workerId, drain);
    (await this.ledger()).update(workerId, { drain });
  }

  /** Runs state changes one at a time, so a decision never acts on a record that moved. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serial.then(fn, fn);
    this.serial = run.catch(() => undefined);
    return run;
  }

  private async bindPool(pool: string): Promise<void> {
    if (this.pool === pool) return;
    this.pool = pool;
    await this.ctx.storage.put("pool", pool);
  }

  private sweepMs(): number {
    return Math.min(15, this.settings.HEARTBEAT_INTERVAL_S, this.settings.WORKER_TIMEOUT_S / 3) * 1000;
  }

  private async ensureAlarm(reschedule = false): Promise<void> {
    const sweepMs = this.sweepMs();
    if (!reschedule && (await this.ctx.storage.getAlarm()) !== null) return;
    const busy = this.ctx.getWebSockets().length > 0 || (this.pool !== null && (await hasUnfinishedJobs(this.db, this.pool)));
    if (busy || !reschedule) await this.ctx.storage.setAlarm(Date.now() + sweepMs);
  }

  /** Sockets by worker: a send looks its socket up rather than walking every socket held. */
  private sockets(): Map<string, WebSocket> {
    if (!this.workerSockets) {
      this.workerSockets = new Map();
      for (const ws of this.ctx.getWebSockets()) {
        const id = sessionOf(ws)?.workerId;
        if (id) this.workerSockets.set(id, ws);
      }
    }
    return this.workerSockets;
  }

  private connectedWorkerIds(): string[] {
    return [...this.sockets().keys()];
  }

  /** Sends to a worker's socket; false when it has none here or the send failed. */
  private send(workerId: string, ...messages: CoordinatorToAgent[]): boolean {
    const ws = this.sockets().get(workerId);
    return ws !== undefined && this.sendOn(ws, messages);
  }

  /** Sends messages in as few frames as the agent agreed to read. */
  private sendOn(ws: WebSocket, messages: CoordinatorToAgent[]): boolean {
    if (messages.length === 0) return true;
    try {
      for (const frame of packFrames(messages.map(encode), sessionOf(ws)?.batchFrames ?? false)) ws.send(frame);
      return true;
    } catch (err) {
      console.error(`coordinator(${this.pool}): send to ${sessionOf(ws)?.workerId} failed`, err);
      return false;
    }
  }

  private reply(ws: WebSocket, code: string, message: string): void {
    try {
      ws.send(encode({ type: "error", payload: { code, message } }));
    } catch {
      // the socket is gone; nothing to tell
    }
  }

  /** A socket went away: its worker is offline until it reconnects; its jobs wait out the timeout. */
  private async forget(ws: WebSocket): Promise<void> {
    const session = sessionOf(ws);
    const workerId = session?.workerId;
    if (!session || !workerId) return;
    try {
      setSession(ws, { ...session, workerId: null });
    } catch {
      // a closed socket may refuse a new attachment; it is gone from getWebSockets() anyway
    }
    const sockets = this.sockets();
    if (sockets.get(workerId) === ws) sockets.delete(workerId);
    if (!sockets.has(workerId)) {
      await this.exclusive(async () => {
        await setOffline(this.db, workerId, Date.now());
        (await this.ledger()).leave(workerId);
      });
    }
  }
}
