import { WebSocket } from "ws";
import { CoordinatorToAgent, decode, encode, HEARTBEAT_FRAME, PROTOCOL_VERSION } from "../protocol/index.ts";
import { backoffDelay } from "../agent/src/backoff.ts";

/**
 * A protocol-level agent with no Docker behind it: it accepts each job and reports it started
 * and finished at once. Many of them load the coordinator the way a fleet would.
 */
export class SimAgent {
  private ws: WebSocket | null = null;
  private stopped = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private failures = 0;
  connectedAt: number | null = null;
  completed = 0;
  onReady: (() => void) | null = null;

  constructor(
    private readonly url: string,
    private readonly token: string,
    readonly name: string,
    private readonly slots: number,
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
          payload: { agent_version: "bench", name: this.name, slots: this.slots, caps: { cpu_cores: 64, memory_mb: 1 << 20, gpus: [], nvidia_runtime: false, labels: {}, os: "sim", arch: "x64", wsl: false }, running: [] },
        }),
      );
    });
    ws.on("message", (raw) => {
      const d = decode(raw.toString(), CoordinatorToAgent);
      if (!d.ok) return;
      const m = d.message;
      if (m.type === "hello_ack") {
        this.failures = 0;
        this.connectedAt = Date.now();
        this.heartbeat = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send(HEARTBEAT_FRAME), m.payload.heartbeat_interval_s * 1000);
        this.onReady?.();
      } else if (m.type === "assign_job") {
        const ref = { job_id: m.payload.job_id, attempt: m.payload.attempt };
        ws.send(encode({ type: "job_started", payload: ref }));
        ws.send(encode({ type: "job_result", payload: { ...ref, exit_code: 0, failure_reason: null, message: null } }));
        this.completed++;
      }
    });
    ws.on("error", () => undefined);
    ws.on("close", () => {
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.connectedAt = null;
      if (!this.stopped) setTimeout(() => this.start(), backoffDelay(this.failures++));
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.ws?.terminate();
  }
}
