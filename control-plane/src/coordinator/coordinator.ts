import { DurableObject } from "cloudflare:workers";
import {
  AgentToCoordinator,
  type CoordinatorToAgent,
  decodeFrame,
  ErrorCode,
  HEARTBEAT_ACK_FRAME,
  HEARTBEAT_FRAME,
  type JobSpec,
  type MessageOf,
} from "../../../protocol/index.ts";
import { createDb, type Db } from "../db/client.ts";
import {
  attemptsByRefs,
  AttemptWrites,
  type AttemptWithJob,
  cancelQueued,
  getAttempt,
  hasUnfinishedJobs,
  holdingAttempts,
} from "../db/attempts.ts";
import { getJob, type JobRow } from "../db/jobs.ts";
import { logStreamOf } from "../logs/log-stream.ts";
import { jobEventsWritten } from "../events/notify.ts";
import { finishProbe, getProbe } from "../db/probes.ts";
import { activeTasks, cancelQueuedTasks, failUnschedulable, queuedPinnedTo, releaseRetries } from "../db/workflows.ts";
import { enforceDeadlines, expireQueued, requeueLostWorkers, type BackstopContext } from "./backstops.ts";
import { logResumes, reconcile, type ReconnectContext } from "./reconnect.ts";
import { deleteOfflineWorker, markOfflineExcept, setDrain, setOffline, setWarm, touchWorkers, upsertWorkers, workersByIds } from "../db/workers.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { agentVersionVerdict } from "../fleet/agent-versions.ts";
import { evaluateAutoscale } from "../fleet/autoscale-hook.ts";
import { settingsOf, type Settings } from "../settings.ts";
import { admission, type Admission } from "./admission.ts";
import { buildAssignment } from "./assignments.ts";
import { assignmentContext, dispatchRound } from "./dispatch-round.ts";
import { sandboxRefusal } from "../sandbox-policy.ts";
import { Faults, faultsEnabled, faultyD1, type FaultPlan } from "./faults.ts";
import { PoolUsage, type SavedUsage } from "./fair-share.ts";
import { applyReport, endAttempt, type Report } from "./attempt-changes.ts";
import { isTerminal } from "./job-state.ts";
import { attemptKey, PoolLedger } from "./ledger.ts";
import { judgement, judgeSocket } from "./liveness.ts";
import { COUNTERS, CoordinatorMetrics, type Counter, type Sample } from "./metrics.ts";
import { initialSchedulerState } from "./scheduler.ts";
import { CloseCode, sessionOf, setSession, type Session } from "./sessions.ts";
import { SETTLE_RETRY, SettlementQueue, settleRetryDelay } from "./settlements.ts";
import { SocketRegistry } from "./socket-registry.ts";
import { TUNNEL_HEADER, TunnelHub, TunnelRequest, tunnelBounds, tunnelError } from "./tunnel-hub.ts";
import { orderUpgrades, orderUpgradesTo, recordUpgradeReport, type UpgradeContext } from "./upgrades.ts";
import { getPoolUpgrade } from "../db/upgrades.ts";

type AgentMessage<T extends AgentToCoordinator["type"]> = MessageOf<AgentToCoordinator, T>["payload"];
const REPORTS: readonly string[] = ["job_accepted", "job_started", "job_result"] satisfies Report["type"][];

/** A hello, with the socket it came on. */
type HelloEvent = { ws: WebSocket; session: Session; hello: AgentMessage<"hello"> };

/** Starts and results written in one group write, at most. */
const SETTLE_BATCH = 200;

/** Jobs pinned to a forgotten worker failed per statement. */
const FORGET_BATCH = 500;

/** Hellos recorded in one round trip, at most: a reconnect storm is recorded in batches. */
const HELLO_BATCH = 100;

/** How long past a probe's own timeout the coordinator waits for the agent's answer. */
const PROBE_ANSWER_SLACK_S = 10;

/** A socket whose hello could not be recorded is closed with this, so the agent redials with backoff. */
const TRY_AGAIN_CLOSE = 1013;


/**
 * One per pool. Holds the pool's agent sockets (hibernatable), schedules its queued jobs and
 * is the only writer of its jobs' states, so each change is a read-decide-write with no
 * other writer in between. D1 is the record: everything here can be rebuilt from it.
 *
 * Every entry point (RPC, socket handlers, the alarm) catches what it does not expect, logs
 * it with the pool, counts it, and leaves the object able to go on; the alarm re-arms itself
 * whatever happened. Every agent message about an attempt is admitted only from the worker
 * holding it (see admission.ts).
 */
export class Coordinator extends DurableObject<Bindings> {
  private readonly db: Db;
  private readonly settings: Settings;
  private readonly faults: Faults | null;
  private readonly sockets: SocketRegistry;
  private readonly settlements: SettlementQueue<Report, Admission["kind"]>;
  private readonly hellos: SettlementQueue<HelloEvent, void>;
  private metrics = new CoordinatorMetrics();
  /**
   * Fair share's decayed usage per project in this pool. A heuristic, so it is stored only at
   * each sweep: an eviction forgets at most one sweep's accrual, which nobody can tell apart
   * from a slightly shorter half-life.
   */
  private usage: PoolUsage;
  private pool: string | null = null;
  private scheduler = initialSchedulerState();
  private serial: Promise<unknown> = Promise.resolve();
  private dispatching = false;
  private dispatchAgain = false;
  /** Per-socket message order (see webSocketMessage). */
  private readonly socketQueues = new Map<WebSocket, Promise<void>>();
  /** Probes waiting for their agent's answer, with the worker each was sent to. */
  private readonly probeWaiters = new Map<string, { workerId: string; answered: () => void }>();
  /** Connected workers and their held attempts; built from D1 on first use after a (re)start. */
  private ledgerLoad: Promise<PoolLedger> | null = null;
  /** Streams to running jobs' containers over the agent sockets (interactive sessions). */
  private readonly tunnels: TunnelHub;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.faults = faultsEnabled(env) ? new Faults() : null;
    this.db = createDb(this.faults ? faultyD1(env.DB, this.faults) : env.DB);
    this.settings = settingsOf(env);
    this.tunnels = new TunnelHub(tunnelBounds(this.settings), (message) => console.error(`coordinator(${this.pool}): ${message}`));
    this.usage = new PoolUsage(this.settings.FAIR_SHARE_HALF_LIFE_S * 1000, undefined, Date.now());
    this.sockets = new SocketRegistry(
      () => ctx.getWebSockets(),
      () => this.pool,
    );
    this.settlements = new SettlementQueue({
      apply: (events) => this.applyReports(events),
      exclusive: (fn) => this.exclusive(fn),
      batch: SETTLE_BATCH,
      onRetry: (err, events, delayMs) => {
        this.count(COUNTERS.settlementRetries);
        console.error(`coordinator(${this.pool}): writing ${events} agent report(s) failed; retrying in ${delayMs} ms`, errorText(err));
      },
    });
    this.hellos = new SettlementQueue({
      apply: (events) => this.applyHellos(events),
      exclusive: (fn) => this.exclusive(fn),
      batch: HELLO_BATCH,
      onRetry: (err, events, delayMs) => console.error(`coordinator(${this.pool}): recording ${events} hello(s) failed; retrying in ${delayMs} ms`, errorText(err)),
    });
    // Heartbeats are answered by the runtime, so an idle pool's object can stay hibernated.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_FRAME, HEARTBEAT_ACK_FRAME));
    void ctx.blockConcurrencyWhile(async () => {
      this.pool = (await ctx.storage.get<string>("pool")) ?? null;
      this.metrics = new CoordinatorMetrics((await ctx.storage.get<Sample[]>("metrics")) ?? []);
      // The slots held while the object was away accrue from the saved time when the next change comes.
      this.usage = new PoolUsage(this.settings.FAIR_SHARE_HALF_LIFE_S * 1000, await ctx.storage.get<SavedUsage>("fair_share"), Date.now());
    });
  }

  // ---- entry points: the API worker calls these ------------------------------------------

  /** An agent's WebSocket, already authenticated by the API worker; or a tunnel stream the port and exec routes checked. */
  override async fetch(request: Request): Promise<Response> {
    const tunnel = request.headers.get(TUNNEL_HEADER);
    if (tunnel !== null) return this.openTunnel(tunnel, request);
    const pool = request.headers.get("x-gridx-pool");
    const tokenId = request.headers.get("x-gridx-token-id");
    if (!pool || !tokenId || request.headers.get("upgrade") !== "websocket") {
      return new Response("expected an agent WebSocket upgrade", { status: 400 });
    }
    await this.bindPool(pool);
    // Before the socket is accepted: should this fail, no socket is left without a sweep to judge it.
    await this.ensureAlarm();
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    setSession(server, { tokenId, workerId: null, connectedAt: Date.now() });
    return new Response(null, { status: 101, webSocket: client });
  }

  /** A stream to a running attempt, on the socket of the worker the ledger says holds it. */
  private async openTunnel(header: string, request: Request): Promise<Response> {
    let req: TunnelRequest;
    try {
      req = TunnelRequest.parse(JSON.parse(header));
    } catch {
      return tunnelError(400, "validation_failed", `${TUNNEL_HEADER} is not a tunnel request`);
    }
    // A read of the ledger, as a log batch's admission is: a page's requests need not queue behind the pool's writes.
    const held = (await this.ledger()).attempt(req.job_id, req.attempt);
    const ws = this.sockets.get(req.worker_id);
    if (!ws || held?.workerId !== req.worker_id) return tunnelError(502, "unavailable", `job ${req.job_id}'s worker is not connected to the control plane now`);
    if (held.status !== "running") return tunnelError(409, "conflict", `job ${req.job_id} is not running (attempt ${req.attempt} is ${held.status})`);
    return this.tunnels.open(ws, req, request);
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
        void jobEventsWritten(this.env, [job.project]);
        void logStreamOf(this.env, jobId).end(jobId).catch(() => undefined);
      } else {
        const attempt = await getAttempt(this.db, jobId, job.attempt);
        if (attempt) await this.commit((w) => endAttempt(w, attempt, { type: "cancel" }, "canceling", "canceled by user", now));
        if (job.workerId) this.sockets.send(job.workerId, { type: "cancel_job", payload: { job_id: jobId, attempt: job.attempt, reason: "user" } });
      }
      return (await getJob(this.db, jobId)) ?? null;
    });
  }

  /** Cancels every unfinished task of an array: the queued ones at once, the running ones through their agents. Returns how many. */
  async cancelArray(pool: string, array: { id: string; project: string }): Promise<number> {
    await this.bindPool(pool);
    const queued = await this.exclusive(() => cancelQueuedTasks(this.db, array.id, Date.now()));
    if (queued) void jobEventsWritten(this.env, [array.project]);
    const active = await activeTasks(this.db, array.id);
    for (const id of active) await this.cancelJob(pool, id);
    // A running task that failed and went back to the queue for a retry meanwhile is caught here.
    const requeued = await this.exclusive(() => cancelQueuedTasks(this.db, array.id, Date.now()));
    if (requeued) void jobEventsWritten(this.env, [array.project]);
    return queued + active.length + requeued;
  }

  /** Stops (or resumes) giving a worker new jobs; its running jobs go on. */
  async setWorkerDrain(pool: string, workerId: string, drain: boolean): Promise<void> {
    await this.bindPool(pool);
    await this.exclusive(() => this.setDrain(workerId, drain ? "operator" : null));
    if (drain) this.sockets.send(workerId, { type: "drain", payload: {} });
    else this.dispatch();
  }

  /**
   * Forgets an offline worker (DELETE /v1/workers/:id): first the queued jobs pinned to it fail
   * `unschedulable`, since no worker will ever be that one again, then its row goes. In that
   * order, a failure between the two leaves the worker to delete again, never a job stranded.
   */
  async forgetWorker(pool: string, workerId: string): Promise<"forgotten" | "online"> {
    await this.bindPool(pool);
    return this.exclusive(async () => {
      if (this.sockets.workerIds().includes(workerId)) return "online";
      for (;;) {
        const pinned = await queuedPinnedTo(this.db, pool, workerId, FORGET_BATCH);
        if (pinned.length === 0) break;
        const failed = await failUnschedulable(this.db, pinned.map((id) => ({ id, message: `unschedulable: pinned to worker ${workerId}, which was deleted` })), Date.now());
        void jobEventsWritten(this.env, [...new Set(failed.map((j) => j.project))]);
        if (pinned.length < FORGET_BATCH) break;
      }
      return (await deleteOfflineWorker(this.db, workerId)) ? "forgotten" : "online";
    });
  }

  /**
   * Sends an operator's probe to a worker and waits for the answer (or the timeout). The
   * outcome is written to the probe's audit record either way.
   */
  async runProbe(pool: string, probe: { id: string; workerId: string; command: string; timeoutS: number }): Promise<void> {
    await this.bindPool(pool);
    const answered = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), (probe.timeoutS + PROBE_ANSWER_SLACK_S) * 1000);
      this.probeWaiters.set(probe.id, {
        workerId: probe.workerId,
        answered: () => {
          clearTimeout(timer);
          resolve(true);
        },
      });
    });
    try {
      const sent = this.sockets.send(probe.workerId, { type: "probe", payload: { probe_id: probe.id, command: probe.command, timeout_s: probe.timeoutS } });
      if (!sent) {
        await finishProbe(this.db, probe.id, { status: "failed", exitCode: null, output: null, truncated: false, error: "the worker is not connected" }, Date.now());
        return;
      }
      if (!(await answered)) {
        await finishProbe(this.db, probe.id, { status: "timeout", exitCode: null, output: null, truncated: false, error: "no answer from the agent in time" }, Date.now());
      }
    } finally {
      this.probeWaiters.delete(probe.id);
    }
  }

  /** An agent token was revoked: its sockets close now, with a code after which the agent does not redial. */
  async revokeToken(pool: string, tokenId: string): Promise<number> {
    await this.bindPool(pool);
    const revoked = this.ctx.getWebSockets().filter((ws) => sessionOf(ws)?.tokenId === tokenId);
    // Every socket closes first: a D1 failure while marking workers offline must not leave one open.
    for (const ws of revoked) {
      try {
        ws.close(CloseCode.revoked, "the agent token was revoked");
      } catch {
        // closed already
      }
    }
    for (const ws of revoked) {
      await this.forget(ws, Date.now()).catch((err: unknown) => console.error(`coordinator(${this.pool}): forgetting a revoked socket failed; the sweep marks its worker offline`, errorText(err)));
    }
    return revoked.length;
  }

  /** The pool's target agent version changed (POST /v1/pools/:pool/upgrade): orders every connected worker not running it. Returns how many are connected. */
  async upgradePool(pool: string): Promise<number> {
    await this.bindPool(pool);
    return this.exclusive(async () => {
      const connected = await workersByIds(this.db, this.sockets.workerIds());
      await orderUpgrades(this.upgradeContext(), connected, Date.now());
      return connected.length;
    });
  }

  /** Each project's decayed usage of this pool (slot-seconds) and the slots its attempts hold now. */
  async fairShare(pool: string): Promise<{ project: string; usage_slot_s: number; running: number }[]> {
    await this.bindPool(pool);
    return this.exclusive(async () => {
      const running = (await this.ledger()).slotsByProject();
      this.usage.advance(Date.now(), running);
      const names = new Set([...this.usage.entries().map(([p]) => p), ...running.keys()]);
      return [...names].map((project) => ({ project, usage_slot_s: this.usage.of(project), running: running.get(project) ?? 0 }));
    });
  }

  /** This pool's counters, for `/metrics`. */
  async metricSamples(pool: string): Promise<Sample[]> {
    await this.bindPool(pool);
    return this.metrics.snapshot();
  }

  /** Test-only (GRIDX_FAULTS=on): makes the coordinator's next D1 calls fail, or resets the object. */
  async injectFaults(pool: string, fault: { d1?: FaultPlan; reset?: boolean }): Promise<{ injected: number }> {
    if (!this.faults) throw new Error("fault injection is off (GRIDX_FAULTS)");
    await this.bindPool(pool);
    if (fault.d1) this.faults.set(fault.d1);
    const injected = this.faults.injected;
    // After the answer: the runtime throws this instance away, as an eviction or a crash would.
    if (fault.reset) setTimeout(() => this.ctx.abort("reset by fault injection"), 0);
    return { injected };
  }

  // ---- agent sockets ------------------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    // Tunnel frames are binary and bypass the queue: credit and bytes must not wait on D1 writes.
    if (typeof raw !== "string") {
      if (!this.tunnels.frame(ws, raw)) this.sockets.reply(ws, ErrorCode.badMessage, "a binary frame is a tunnel frame: [type u8][stream u32][payload]");
      return;
    }
    // One socket's frames are handled in the order they came: a result must never overtake
    // the log lines sent before it while a D1 write is in flight.
    const previous = this.socketQueues.get(ws) ?? Promise.resolve();
    const handled = previous.then(() =>
      this.guard("webSocketMessage", () => this.handleFrame(ws, raw), () => this.sockets.reply(ws, ErrorCode.internal, "the coordinator could not handle that frame; unacknowledged results are re-sent")),
    );
    this.socketQueues.set(ws, handled);
    await handled;
    if (this.socketQueues.get(ws) === handled) this.socketQueues.delete(ws);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    await this.guard("webSocketClose", async () => {
      try {
        ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
      } catch {
        // already closed
      }
      await this.forget(ws, Date.now());
    });
  }

  override async webSocketError(ws: WebSocket, err: unknown): Promise<void> {
    await this.guard("webSocketError", async () => {
      console.error(`coordinator(${this.pool}): socket error`, errorText(err));
      await this.forget(ws, Date.now());
    });
  }

  /**
   * Handles a frame's messages in order. Consecutive starts and results go to one group write
   * together, and the results are acknowledged together once it is stored; any other message
   * waits for the reports before it.
   */
  private async handleFrame(ws: WebSocket, raw: string): Promise<void> {
    const reports: Promise<void>[] = [];
    const acks: CoordinatorToAgent[] = [];
    const settleReports = async () => {
      if (reports.length === 0) return;
      await Promise.all(reports.splice(0));
      this.sockets.sendOn(ws, acks.splice(0));
      this.dispatch();
    };
    for (const decoded of decodeFrame(raw, AgentToCoordinator)) {
      if (!decoded.ok) {
        this.sockets.reply(ws, decoded.code, decoded.message);
        if (decoded.code === ErrorCode.protocolVersion) return ws.close(CloseCode.protocolVersion, "protocol version unsupported");
        continue;
      }
      const msg = decoded.message;
      const workerId = sessionOf(ws)?.workerId;
      if (workerId && REPORTS.includes(msg.type)) {
        const event = { ...msg, workerId } as Report;
        reports.push(this.report(ws, event, acks));
        continue;
      }
      await settleReports();
      await this.handleMessage(ws, msg);
      // Refused for good (another token's worker name): the rest of the frame has no one to answer.
      if (ws.readyState !== WebSocket.OPEN) return;
    }
    await settleReports();
  }

  /** Queues a start or result for the next group write, and says what became of it. */
  private async report(ws: WebSocket, event: Report, acks: CoordinatorToAgent[]): Promise<void> {
    const ref = { job_id: event.payload.job_id, attempt: event.payload.attempt };
    let verdict: Admission["kind"];
    try {
      verdict = await this.settlements.push(event);
    } catch (err) {
      // Given up after many retries: the agent re-sends an unacknowledged result on its timer.
      this.sockets.reply(ws, ErrorCode.unavailable, `${event.type} for attempt ${ref.attempt} of job ${ref.job_id} could not be stored (${errorText(err)}); send it again`);
      return;
    }
    if (verdict === "refused") {
      this.refuse(ws, event.type, `${event.type}: attempt ${ref.attempt} of job ${ref.job_id} is not this worker's`);
      return;
    }
    if (verdict === "fenced") this.count(COUNTERS.fenced, { type: event.type });
    if (event.type === "job_result") acks.push({ type: "result_ack", payload: ref });
  }

  private async handleMessage(ws: WebSocket, msg: AgentToCoordinator): Promise<void> {
    const session = sessionOf(ws);
    if (!session) return;
    if (msg.type === "hello") return await this.onHello(ws, session, msg.payload);
    if (msg.type === "heartbeat") return void ws.send(HEARTBEAT_ACK_FRAME);
    const workerId = session.workerId;
    if (!workerId) return this.refuse(ws, msg.type, "send hello first");
    switch (msg.type) {
      case "job_log":
        return await this.onLog(ws, workerId, msg.payload);
      case "draining":
        return await this.exclusive(() => this.setDrain(workerId, "agent"));
      case "warm_cache":
        return await this.exclusive(async () => {
          await setWarm(this.db, workerId, msg.payload);
          (await this.ledger()).update(workerId, { warm: msg.payload });
        });
      case "probe_result":
        return await this.onProbeResult(ws, workerId, msg.payload);
      case "upgrade_status":
        return await this.exclusive(() => recordUpgradeReport(this.upgradeContext(), workerId, msg.payload, Date.now()));
      case "job_accepted":
      case "job_started":
      case "job_result":
        return; // reported through report(), above
    }
  }

  // ---- the sweep ----------------------------------------------------------------------------

  /**
   * Runs every few seconds while the pool has sockets or unfinished jobs: drops silent
   * sockets, records liveness, requeues the jobs of workers gone too long, enforces start
   * and job deadlines, and schedules. Never throws, and always schedules the next sweep: a
   * D1 outage delays this work, it never stops it.
   */
  override async alarm(): Promise<void> {
    try {
      await this.sweep();
    } catch (err) {
      this.count(COUNTERS.alarmFailures);
      console.error(`coordinator(${this.pool}): sweep failed; the next one is scheduled`, errorText(err));
    } finally {
      await this.rearm();
    }
    await this.autoscale();
    await this.retryUpgradeOrders();
  }

  /**
   * Orders again the connected workers whose upgrade order is still pending: one that a D1
   * failure kept from being given or recorded (at hello or at the operator's POST) is given at
   * the next sweep, not at the worker's next reconnect. An order the agent took is not repeated.
   */
  private async retryUpgradeOrders(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    try {
      const target = await getPoolUpgrade(this.db, pool);
      if (!target) return;
      await this.exclusive(async () => orderUpgradesTo(this.upgradeContext(), target, await workersByIds(this.db, this.sockets.workerIds()), Date.now()));
    } catch (err) {
      this.count(COUNTERS.alarmFailures);
      console.error(`coordinator(${pool}): upgrade orders failed; the next sweep gives them`, errorText(err));
    }
  }

  /** The pool's autoscaling hook (fleet/autoscale-hook.ts), after the sweep and its re-arm, so a slow or failing receiver holds back neither. */
  private async autoscale(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    try {
      const workers = await this.exclusive(async () => (await this.ledger()).views());
      await evaluateAutoscale({ db: this.db, env: this.env, settings: this.settings, pool, workers, storage: this.ctx.storage, now: Date.now() });
    } catch (err) {
      this.count(COUNTERS.alarmFailures);
      console.error(`coordinator(${pool}): autoscaling failed; the next sweep evaluates again`, errorText(err));
    }
  }

  private async sweep(): Promise<void> {
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
        // Counted from its last heartbeat, so its jobs are requeued in this very sweep.
        await this.forget(ws, verdict.lastSeen);
      } else if (session.workerId) seen.push({ id: session.workerId, at: verdict.lastSeen });
    }
    // A socket that closed without the runtime telling us (or while its hello waited) must not keep its worker online.
    const live = new Set(this.ctx.getWebSockets());
    for (const [workerId, ws] of this.sockets.entries()) if (!live.has(ws)) await this.offline(workerId, ws, now);
    const clock = await this.ctx.storage.get<{ lastSweepAt: number; graceUntil: number | null }>("sweep");
    const { judge, graceUntil } = judgement({ now, lastSweepAt: clock?.lastSweepAt ?? null, graceUntil: clock?.graceUntil ?? null, sweepMs: this.sweepMs(), workerTimeoutMs: limits.workerTimeoutMs });
    await this.ctx.storage.put({ sweep: { lastSweepAt: now, graceUntil }, metrics: this.metrics.snapshot(), fair_share: this.usage.saved() });
    await this.exclusive(async () => {
      await touchWorkers(this.db, seen);
      await markOfflineExcept(this.db, pool, this.sockets.workerIds());
      const backstop = this.backstopContext();
      await releaseRetries(this.db, pool, now);
      await expireQueued(backstop, pool, now);
      if (!judge) return;
      await requeueLostWorkers(backstop, pool, now - limits.workerTimeoutMs);
      await enforceDeadlines(backstop, pool, now);
    });
    this.dispatch();
  }

  private async rearm(): Promise<void> {
    try {
      await this.ensureAlarm(true);
    } catch (err) {
      // Could not tell whether the pool is busy (D1 down): sweep again anyway.
      console.error(`coordinator(${this.pool}): could not decide the next sweep; scheduling it`, errorText(err));
      await this.ctx.storage.setAlarm(Date.now() + this.sweepMs()).catch((e: unknown) => console.error(`coordinator(${this.pool}): setAlarm failed`, errorText(e)));
    }
  }

  // ---- handlers -----------------------------------------------------------------------------

  /**
   * Queues a hello to be recorded with the others that arrive meanwhile. The socket is marked
   * as having said hello, so waiting its turn in a reconnect storm never times it out.
   */
  private async onHello(ws: WebSocket, session: Session, hello: AgentMessage<"hello">): Promise<void> {
    // One hello per connection: a second would leave the first worker pointing at this socket.
    if (session.workerId || session.helloAt) return this.refuse(ws, "hello", "this connection said hello already; open a new one for another worker");
    const version = agentVersionVerdict(hello.agent_version, { minimum: this.settings.AGENT_MIN_VERSION, recommended: this.settings.AGENT_RECOMMENDED_VERSION });
    if (version.kind === "refused") {
      // The whole message in an error frame (the agent logs it), then the close after which it stops rather than redial.
      this.sockets.reply(ws, ErrorCode.forbidden, version.message);
      return ws.close(CloseCode.outdated, `agent older than the minimum ${version.minimum}`);
    }
    const waiting = { ...session, helloAt: Date.now() };
    setSession(ws, waiting);
    try {
      await this.hellos.push({ ws, session: waiting, hello });
    } catch (err) {
      console.error(`coordinator(${this.pool}): hello of ${hello.name} could not be recorded`, errorText(err));
      this.sockets.reply(ws, ErrorCode.unavailable, "the coordinator could not record this hello; reconnect");
      ws.close(TRY_AGAIN_CLOSE, "try again later");
    }
  }

  /** Records a batch of hellos in one round trip, then greets, joins and reconciles each worker. */
  private async applyHellos(events: HelloEvent[]): Promise<void[]> {
    const pool = this.pool!;
    const now = Date.now();
    const workers = await upsertWorkers(
      this.db,
      events.map(({ session, hello }) => ({ pool, name: hello.name, tokenId: session.tokenId, caps: hello.caps, slots: hello.slots, agentVersion: hello.agent_version, warm: hello.warm, draining: hello.draining === true, now })),
    );
    const joined = workers.flatMap((w) => (w ? [w.id] : []));
    const held = await holdingAttempts(this.db, joined);
    const ledger = await this.ledger();
    const greeted: { id: string; agentVersion: string }[] = [];
    for (const [i, { ws, session, hello }] of events.entries()) {
      const worker = workers[i];
      // Gone while its hello waited: nothing to greet (its row says online until the next sweep).
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (!worker) {
        this.refuse(ws, "hello", `worker ${hello.name} in pool ${pool} belongs to another agent token`);
        ws.close(CloseCode.identity, "this worker name belongs to another agent token");
        continue;
      }
      const other = this.sockets.get(worker.id);
      if (other && other !== ws) {
        try {
          setSession(other, { ...sessionOf(other)!, workerId: null });
          other.close(CloseCode.replaced, "replaced by a newer connection of the same worker");
        } catch {
          // closed already: it only had to stop being this worker's
        }
      }
      setSession(ws, { ...session, workerId: worker.id, batchFrames: hello.batch_frames });
      this.sockets.set(worker.id, ws);
      this.sockets.sendOn(ws, [{ type: "hello_ack", payload: { worker_id: worker.id, heartbeat_interval_s: this.settings.HEARTBEAT_INTERVAL_S, draining: worker.drain !== null, batch_frames: true } }]);
      const mine = held.filter((a) => a.workerId === worker.id);
      ledger.join(worker, mine);
      await reconcile(this.reconnectContext(), worker.id, mine, hello.running, now);
      this.sockets.sendOn(ws, await logResumes(this.env, pool, mine, hello.running));
      greeted.push({ id: worker.id, agentVersion: hello.agent_version });
    }
    // An order that cannot be given now is given at the worker's next hello: it never holds this batch back.
    await orderUpgrades(this.upgradeContext(), greeted, now).catch((err: unknown) => console.error(`coordinator(${pool}): upgrade orders failed`, errorText(err)));
    this.dispatch();
    return events.map(() => undefined);
  }

  /**
   * Decides each event against its attempt as the events before it in the batch left it, in
   * arrival order, and writes them in one batch. Only the worker holding an attempt changes it.
   */
  private async applyReports(events: Report[]): Promise<Admission["kind"][]> {
    const ledger = await this.ledger();
    const now = Date.now();
    const verdicts: Admission["kind"][] = [];
    const recorded = await this.recordedOwners(events.filter((e) => !ledger.attempt(e.payload.job_id, e.payload.attempt)));
    await this.commit((writes) => {
      const latest = new Map<string, AttemptWithJob>();
      for (const e of events) {
        const key = attemptKey(e.payload.job_id, e.payload.attempt);
        const verdict = admission(e.workerId, e.payload, latest.get(key) ?? ledger.attempt(e.payload.job_id, e.payload.attempt), recorded.get(key));
        verdicts.push(verdict.kind);
        if (verdict.kind !== "admit") continue;
        const a = verdict.attempt;
        const next = applyReport(writes, a, e, now, { prepareTimeoutMs: this.settings.PREPARE_TIMEOUT_S * 1000, deadlineGraceMs: this.settings.DEADLINE_GRACE_S * 1000 });
        if (next) latest.set(key, next);
      }
    });
    return verdicts;
  }

  /** Who held each attempt the ledger does not: a late report of one's own, or someone else's. */
  private async recordedOwners(events: Report[]): Promise<Map<string, AttemptWithJob>> {
    const found = await attemptsByRefs(
      this.db,
      events.map((e) => e.payload),
    );
    return new Map(found.map((a) => [attemptKey(a.jobId, a.attempt), a]));
  }

  private async onLog(ws: WebSocket, workerId: string, log: AgentMessage<"job_log">): Promise<void> {
    const held = (await this.ledger()).attempt(log.job_id, log.attempt);
    const verdict = admission(workerId, log, held, held ? undefined : await getAttempt(this.db, log.job_id, log.attempt));
    if (verdict.kind === "refused") return this.refuse(ws, "job_log", `job_log: ${verdict.reason}`);
    if (verdict.kind === "fenced") {
      this.count(COUNTERS.fenced, { type: "job_log" });
      return;
    }
    // The job's log stream stores the batch and pushes it to its followers. The agent does not
    // re-send log lines, so a failed hand-over is retried here, holding this socket's later
    // frames (and so the job's result) back until its lines are stored.
    for (let failures = 1; ; failures++) {
      try {
        await logStreamOf(this.env, log.job_id).append(log.job_id, log.attempt, log.seq, log.lines);
        return;
      } catch (err) {
        if (failures >= SETTLE_RETRY.giveUpAfter) throw err;
        this.count(COUNTERS.settlementRetries);
        console.error(`coordinator(${this.pool}): storing a log batch of ${log.job_id} failed; retrying`, errorText(err));
        await new Promise((r) => setTimeout(r, settleRetryDelay(failures)));
      }
    }
  }

  /** Only the worker a probe was sent to may answer it, and only once. */
  private async onProbeResult(ws: WebSocket, workerId: string, r: AgentMessage<"probe_result">): Promise<void> {
    const waiter = this.probeWaiters.get(r.probe_id);
    const owner = waiter?.workerId ?? (await getProbe(this.db, r.probe_id))?.workerId;
    if (owner !== workerId) return this.refuse(ws, "probe_result", `probe_result: probe ${r.probe_id} was not sent to this worker`);
    await finishProbe(this.db, r.probe_id, { status: r.status, exitCode: r.exit_code, output: r.output, truncated: r.truncated, error: r.error }, Date.now(), workerId);
    waiter?.answered();
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
        // The next event or sweep schedules again: a failed round delays jobs, it loses none.
        this.count(COUNTERS.handlerFailures, { entry: "dispatch" });
        console.error(`coordinator(${this.pool}): dispatch failed`, errorText(err));
      } finally {
        this.dispatching = false;
      }
    };
    this.ctx.waitUntil(run());
  }

  private async dispatchRound(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    const round = await dispatchRound({
      db: this.db,
      env: this.env,
      settings: this.settings,
      pool,
      ledger: await this.ledger(),
      usage: this.usage,
      scheduler: this.scheduler,
      send: (workerId, messages) => this.sockets.send(workerId, ...messages),
      unbuilt: () => this.count(COUNTERS.handlerFailures, { entry: "assignment" }),
    });
    this.scheduler = round.scheduler;
    void jobEventsWritten(this.env, round.projects);
    if (round.more) this.dispatchAgain = true;
  }

  private async sendAssignment(a: AttemptWithJob): Promise<void> {
    const job = await getJob(this.db, a.jobId);
    if (!job) return;
    const context = await assignmentContext(this.db, this.env, this.settings, job.pool);
    // Not sent again once the pool's policy stopped admitting it: the start bound takes it back, and dispatch fails it saying why.
    if (sandboxRefusal(job.spec as JobSpec, context.sandbox, this.settings.ALLOWED_IMAGES)) return;
    this.sockets.send(a.workerId, await buildAssignment(context, a.jobId, a.attempt, job.spec as JobSpec, a.gpuIndices));
  }

  // ---- plumbing -----------------------------------------------------------------------------

  /** What reconciling a reconnected agent (reconnect.ts) works with. */
  private reconnectContext(): ReconnectContext {
    return {
      commit: (decide) => this.commit(decide),
      resend: (a) => this.sendAssignment(a),
      send: (workerId, message) => void this.sockets.send(workerId, message),
    };
  }

  /** What ordering upgrades (upgrades.ts) works with. */
  private upgradeContext(): UpgradeContext {
    return { db: this.db, env: this.env, settings: this.settings, pool: this.pool!, send: (workerId, message) => this.sockets.send(workerId, message) };
  }

  /** What the sweep's backstops (backstops.ts) work with: the object's D1, ledger, commits and sockets. */
  private backstopContext(): BackstopContext {
    return {
      db: this.db,
      env: this.env,
      settings: this.settings,
      connected: () => this.sockets.workerIds(),
      ledger: () => this.ledger(),
      commit: (decide) => this.commit(decide),
      send: (workerId, message) => void this.sockets.send(workerId, message),
    };
  }

  /** Writes the attempt changes `decide` makes in one batch, then records them in the ledger. */
  private async commit(decide: (writes: AttemptWrites) => unknown): Promise<void> {
    const writes = new AttemptWrites();
    decide(writes);
    const statements = writes.statements(this.db);
    if (statements.length) await this.db.$client.batch(statements);
    const ledger = await this.ledger();
    // Up to now the slots were held as before these writes.
    this.usage.advance(Date.now(), ledger.slotsByProject());
    for (const a of writes.written) {
      ledger.record(a);
      if (a.status !== "running") this.tunnels.attemptEnded(a.jobId, a.attempt);
      if (a.status === "finished" && a.finishedAt !== null) this.usage.finished(a.finishedAt - a.assignedAt);
      // After its lines: every batch of the attempt was stored before its result was settled.
      if (a.jobAttempt === a.attempt && isTerminal(a.jobStatus)) void logStreamOf(this.env, a.jobId).end(a.jobId).catch(() => undefined);
    }
    void jobEventsWritten(this.env, writes.written.map((a) => a.project));
  }

  /**
   * The ledger, read from D1 for the sockets held when first needed: the object may have been
   * evicted and woken for a hibernated socket. Used only inside exclusive().
   */
  private ledger(): Promise<PoolLedger> {
    if (this.ledgerLoad) return this.ledgerLoad;
    const load = (async () => {
      const ids = this.sockets.workerIds();
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

  /** Runs a socket handler so that nothing it throws escapes: logged, counted, and the object goes on. */
  private async guard(entry: string, fn: () => Promise<void>, after?: () => void): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.count(COUNTERS.handlerFailures, { entry });
      console.error(`coordinator(${this.pool}): ${entry} failed`, errorText(err));
      after?.();
    }
  }

  private count(name: Counter, labels: Record<string, string> = {}): void {
    this.metrics.count(name, labels);
  }

  /** Refuses a message: an error frame to the agent, and a count. */
  private refuse(ws: WebSocket, type: string, message: string): void {
    this.count(COUNTERS.refused, { type });
    this.sockets.reply(ws, ErrorCode.forbidden, message);
  }

  private async bindPool(pool: string): Promise<void> {
    if (this.pool === pool) return;
    this.pool = pool;
    await this.ctx.storage.put("pool", pool);
  }

  private sweepMs(): number {
    return Math.min(15, this.settings.HEARTBEAT_INTERVAL_S, this.settings.WORKER_TIMEOUT_S / 3) * 1000;
  }

  /** Arms the sweep if none is set; with `reschedule`, arms the next one while the pool is busy. */
  private async ensureAlarm(reschedule = false): Promise<void> {
    const next = Date.now() + this.sweepMs();
    if (!reschedule) {
      if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(next);
      return;
    }
    const busy = this.ctx.getWebSockets().length > 0 || (this.pool !== null && (await hasUnfinishedJobs(this.db, this.pool)));
    if (busy) await this.ctx.storage.setAlarm(next);
  }

  /**
   * A socket went away: its worker is offline until it reconnects, and its jobs wait out the
   * worker timeout counted from `lastSeen`. The ledger forgets the worker even when D1 cannot
   * be written; the next sweep marks it offline there.
   */
  private async forget(ws: WebSocket, lastSeen: number): Promise<void> {
    this.tunnels.socketClosed(ws);
    const session = sessionOf(ws);
    const workerId = session?.workerId;
    if (!session || !workerId) return;
    try {
      setSession(ws, { ...session, workerId: null });
    } catch {
      // a closed socket may refuse a new attachment; it is gone from getWebSockets() anyway
    }
    await this.offline(workerId, ws, lastSeen);
  }

  /** `ws` is no longer `workerId`'s socket; with no other, the worker is offline and leaves the ledger. */
  private async offline(workerId: string, ws: WebSocket, lastSeen: number): Promise<void> {
    if (!this.sockets.drop(workerId, ws)) return;
    await this.exclusive(async () => {
      // Its hello may have come back on a new socket meanwhile: then it is online.
      if (this.sockets.get(workerId)) return;
      (await this.ledger().catch(() => null))?.leave(workerId);
      await setOffline(this.db, workerId, lastSeen).catch((err: unknown) => console.error(`coordinator(${this.pool}): marking ${workerId} offline failed; the next sweep does`, errorText(err)));
    });
  }
}
