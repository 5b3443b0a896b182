import { encode, packFrames, type CoordinatorToAgent } from "../../../protocol/index.ts";
import { sessionOf } from "./sessions.ts";

/**
 * The pool's agent sockets by worker, so a send looks its socket up rather than walking every
 * socket held. Built from the sockets' sessions on first use after a wake; sends never throw.
 */
export class SocketRegistry {
  private byWorker: Map<string, WebSocket> | null = null;

  constructor(
    private readonly all: () => WebSocket[],
    private readonly pool: () => string | null,
  ) {}

  private map(): Map<string, WebSocket> {
    if (!this.byWorker) {
      this.byWorker = new Map();
      for (const ws of this.all()) {
        const id = sessionOf(ws)?.workerId;
        if (id) this.byWorker.set(id, ws);
      }
    }
    return this.byWorker;
  }

  get(workerId: string): WebSocket | undefined {
    return this.map().get(workerId);
  }

  set(workerId: string, ws: WebSocket): void {
    this.map().set(workerId, ws);
  }

  /** Forgets `ws` as its worker's socket; true when the worker has no socket here now. */
  drop(workerId: string, ws: WebSocket): boolean {
    const map = this.map();
    if (map.get(workerId) === ws) map.delete(workerId);
    return !map.has(workerId);
  }

  entries(): [string, WebSocket][] {
    return [...this.map().entries()];
  }

  workerIds(): string[] {
    return [...this.map().keys()];
  }

  /** Sends to a worker's socket; false when it has none here or the send failed. */
  send(workerId: string, ...messages: CoordinatorToAgent[]): boolean {
    const ws = this.get(workerId);
    return ws !== undefined && this.sendOn(ws, messages);
  }

  /** Sends messages in as few frames as the agent agreed to read. */
  sendOn(ws: WebSocket, messages: CoordinatorToAgent[]): boolean {
    if (messages.length === 0) return true;
    try {
      for (const frame of packFrames(messages.map(encode), sessionOf(ws)?.batchFrames ?? false)) ws.send(frame);
      return true;
    } catch (err) {
      console.error(`coordinator(${this.pool()}): send to ${sessionOf(ws)?.workerId} failed`, err);
      return false;
    }
  }

  /** An error frame; the socket may be gone already, and then there is no one to tell. */
  reply(ws: WebSocket, code: string, message: string): void {
    this.sendOn(ws, [{ type: "error", payload: { code, message } }]);
  }
}
