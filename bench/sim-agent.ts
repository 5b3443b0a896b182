import { WebSocket } from "ws";
import { CoordinatorToAgent, decodeFrame, encode, HEARTBEAT_FRAME, packFrames, PROTOCOL_VERSION } from "../protocol/index.ts";
import { backoffDelay } from "../agent/src/backoff.ts";

/**
 * A protocol-level agent with no Docker behind it: it accepts each job and reports it started
 * and finished at once. Many of them load the coordinator the way a fleet would. Like the
 * agent, it batches what it sends in one turn into one frame where the coordinator agrees;
 * `batchFrames: false` makes it speak one message per frame.
 */
export class SimAgent {
  private ws: WebSocket | null = null;
  private stopped = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private failures = 0;
  /** Whether this connection sends batched frames: both sides agreed in hello / hello_ack. */
  private batching = false;
  connectedAt: number | null = null;
  completed = 0;
  onReady: (() => void) | null = null;

  constructor(
    private readonly url: string,
    private readonly token: string,
    readonly name: string,
    private readonly slots: number,
    private readonly batchFrames = true,
  ) {}

  start(): void {
    if (this.stopped) return;
    const wsUrl = new URL("/v1/agent/connect", this.url);
    wsUrl.protocol = "ws:";
    wsUrl.searchParams.set("protocol", String(PROTOCOL_VERSION));
    const ws = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${this.token}` } });
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
            running: [],
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

  /** Handles one message from the coordinator; what it answers goes into `reports`. */
  private onMessage(ws: WebSocket, m: CoordinatorToAgent, reports: string[]): void {
    if (m.type === "hello_ack") {
      this.failures = 0;
      this.connectedAt = Date.now();
      this.batching = this.batchFrames && m.payload.batch_frames;
      this.heartbeat = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send(HEARTBEAT_FRAME), m.payload.heartbeat_interval_s * 1000);
      this.onReady?.();
    } else if (m.type === "assign_job") {
      const ref = { job_id: m.payload.job_id, attempt: m.payload.attempt };
      reports.push(encode({ type: "job_started", payload: ref }), encode({ type: "job_result", payload: { ...ref, exit_code: 0, failure_reason: null, message: null } }));
      this.completed++;
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.ws?.terminate();
  }
}
