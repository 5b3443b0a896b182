import { WebSocket } from "ws";
import { CoordinatorToAgent, decodeFrame, encode, HEARTBEAT_FRAME, packFrames, PROTOCOL_VERSION, type AttemptRef } from "../protocol/index.ts";
import { backoffDelay } from "../agent/src/backoff.ts";

export interface SimAgentOptions {
  /** Batch what one turn sends into one frame where the coordinator agrees (as the agent does); false: one message per frame. */
  batchFrames?: boolean;
  /** Keep each job running once started, until `finishJobs()`; by default a job finishes at once. */
  hold?: boolean;
  /** Each job runs this long (ms) after it starts; by default it finishes at once. A result due while disconnected is dropped. */
  runMs?: number;
}

/** The real agent's limit on an opening handshake (agent/src/connection.ts). */
const HANDSHAKE_TIMEOUT_MS = 15_000;

const keyOf = (r: AttemptRef) => `${r.job_id}#${r.attempt}`;

/**
 * A protocol-level agent with no Docker behind it: it accepts each job and reports it started
 * and finished at once, or (`hold`) keeps it running, reports it in every hello as the agent
 * does after a reconnect, and finishes it when told. It redials with the agent's backoff and
 * full jitter. Many of them load the coordinator the way a fleet would.
 */
export class SimAgent {
  private ws: WebSocket | null = null;
  private stopped = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private failures = 0;
  /** Whether this connection sends batched frames: both sides agreed in hello / hello_ack. */
  private batching = false;
  /** Jobs held (`hold`): running, or finished with a result not yet acknowledged. */
  private readonly held = new Map<string, { ref: AttemptRef; finished: boolean }>();
  private readonly batchFrames: boolean;
  private readonly runMs: number;
  /** Keep started jobs running; cleared by `finishJobs()`. */
  private hold: boolean;
  /** When the current connection's hello_ack came; null while not connected. */
  connectedAt: number | null = null;
  /** Results sent (or, with `hold`, acknowledged). */
  completed = 0;
  /** Assignments received, and cancels: a cancel of a held job means the coordinator took it back. */
  assigned = 0;
  canceled = 0;
  /** Connections opened, the first included. */
  dials = 0;
  onReady: (() => void) | null = null;

  /** `url`: the control plane, or a function read at each dial (its address may change between starts). */
  constructor(
    private readonly url: string | (() => string),
    private readonly token: string,
    readonly name: string,
    private readonly slots: number,
    opts: SimAgentOptions = {},
  ) {
    this.batchFrames = opts.batchFrames ?? true;
    this.hold = opts.hold ?? false;
    this.runMs = opts.runMs ?? 0;
  }

  /** Jobs this agent holds and has not finished. */
  get running(): number {
    let n = 0;
    for (const h of this.held.values()) if (!h.finished) n++;
    return n;
  }

  /** Jobs held in all, finished ones awaiting their acknowledgement included. */
  get holding(): number {
    return this.held.size;
  }

  start(): void {
    if (this.stopped) return;
    this.dials++;
    const wsUrl = new URL("/v1/agent/connect", typeof this.url === "string" ? this.url : this.url());
    wsUrl.protocol = "ws:";
    wsUrl.searchParams.set("protocol", String(PROTOCOL_VERSION));
    const ws = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${this.token}` }, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    this.ws = ws;
    ws.on("open", () => {
      ws.send(
        encode({
          type: "hello",
          payload: {
            agent_version: "bench",
            name: this.name,
            slots: this.slots,
            caps: { cpu_cores: 64, memory_mb: 1 << 20, gpus: [], nvidia_runtime: false, labels: {}, os: "sim", arch: "x64", wsl: false },
            running: [...this.held.values()].map((h) => h.ref),
            batch_frames: this.batchFrames,
          },
        }),
      );
    });
    ws.on("message", (raw) => {
      const reports: string[] = [];
      for (const d of decodeFrame(raw.toString(), CoordinatorToAgent)) if (d.ok) this.onMessage(ws, d.message, reports);
      for (const frame of packFrames(reports, this.batching)) ws.send(frame);
    });
    ws.on("error", () => undefined);
    ws.on("close", () => {
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.connectedAt = null;
      this.batching = false;
      if (!this.stopped) setTimeout(() => this.start(), backoffDelay(this.failures++));
    });
  }

  /**
   * Finishes every held job: its result goes now, or after the next hello_ack if not connected.
   * Jobs assigned from now on finish at once, so a job taken back and assigned again ends too.
   */
  finishJobs(): void {
    this.hold = false;
    for (const h of this.held.values()) h.finished = true;
    const ws = this.ws;
    if (this.connectedAt === null || ws?.readyState !== WebSocket.OPEN) return;
    for (const frame of packFrames(this.results(), this.batching)) ws.send(frame);
  }

  private results(): string[] {
    return [...this.held.values()].filter((h) => h.finished).map((h) => encode({ type: "job_result", payload: { ...h.ref, exit_code: 0, failure_reason: null, message: null } }));
  }

  /** Handles one message from the coordinator; what it answers goes into `reports`. */
  private onMessage(ws: WebSocket, m: CoordinatorToAgent, reports: string[]): void {
    if (m.type === "hello_ack") {
      this.failures = 0;
      this.connectedAt = Date.now();
      this.batching = this.batchFrames && m.payload.batch_frames;
      this.heartbeat = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send(HEARTBEAT_FRAME), m.payload.heartbeat_interval_s * 1000);
      // As the agent does: results not yet acknowledged are sent again on each connection.
      reports.push(...this.results());
      this.onReady?.();
    } else if (m.type === "assign_job") {
      this.assigned++;
      const ref = { job_id: m.payload.job_id, attempt: m.payload.attempt };
      reports.push(encode({ type: "job_started", payload: ref }));
      if (this.hold) {
        this.held.set(keyOf(ref), { ref, finished: false });
      } else if (this.runMs > 0) {
        setTimeout(() => {
          if (ws.readyState !== WebSocket.OPEN) return;
          ws.send(encode({ type: "job_result", payload: { ...ref, exit_code: 0, failure_reason: null, message: null } }));
          this.completed++;
        }, this.runMs);
      } else {
        reports.push(encode({ type: "job_result", payload: { ...ref, exit_code: 0, failure_reason: null, message: null } }));
        this.completed++;
      }
    } else if (m.type === "result_ack") {
      if (this.held.delete(keyOf(m.payload))) this.completed++;
    } else if (m.type === "cancel_job") {
      if (this.held.delete(keyOf(m.payload))) this.canceled++;
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.ws?.terminate();
  }
}
