import type { AgentToCoordinator, AttemptRef } from "../../protocol/index.ts";
import { JobLog, type LogLimits } from "./runner/log-collector.ts";

/** The socket as the log sender sees it (the Connection). */
export interface LogChannel {
  /** Connected and greeted: what is sent now goes out on this socket. */
  readonly writable: boolean;
  /** Bytes handed to the socket and not yet written to the network. */
  readonly buffered: number;
  send(msg: AgentToCoordinator): void;
}

/**
 * A batch goes out while no more than this waits on the socket: an idle socket gets each line
 * on the next tick, a busy one gets the lines that gathered meanwhile as one batch.
 */
export const IDLE_BUFFERED_BYTES = 16 * 1024;

interface Entry {
  ref: AttemptRef;
  log: JobLog;
  seq: number;
  /** Resolves once the ended log has been handed to the socket. */
  finished: (() => void) | null;
}

const keyOf = (r: AttemptRef) => `${r.job_id}#${r.attempt}`;

/**
 * Sends every running job's log over the one socket, fairly: a batch from each job with lines
 * waiting in turn, and only while the socket is (nearly) idle, so one job's flood waits behind
 * its own batches, not in front of other jobs' lines or the agent's results and heartbeats.
 */
export class LogSender {
  private readonly jobs = new Map<string, Entry>();
  /** Keys in turn order: the next batch comes from the first with lines waiting, which then goes last. */
  private turns: string[] = [];
  private scheduled = false;

  constructor(
    private readonly channel: LogChannel,
    private readonly limits: LogLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Begins a job's log; the same attempt opened again (a re-sent assignment) gets the one it has. */
  open(ref: AttemptRef, capBytes: number): JobLog {
    const key = keyOf(ref);
    const known = this.jobs.get(key);
    if (known) return known.log;
    const log = new JobLog(this.limits, capBytes, () => this.schedule(), this.now);
    this.jobs.set(key, { ref, log, seq: 0, finished: null });
    this.turns.push(key);
    return log;
  }

  /**
   * Ends a job's log (see JobLog.end) and resolves once all of it has been handed to the
   * socket, so the job's result can follow it.
   */
  finish(ref: AttemptRef, lastWords: string | null = null): Promise<void> {
    const entry = this.jobs.get(keyOf(ref));
    if (!entry) return Promise.resolve();
    entry.log.end(lastWords);
    return new Promise((resolve) => {
      entry.finished = resolve;
      this.settle(keyOf(ref), entry);
    });
  }

  /** Gives up on what could not be sent (the agent is closing with no line): every `finish` resolves. */
  abandon(): void {
    for (const entry of this.jobs.values()) entry.finished?.();
    this.jobs.clear();
    this.turns = [];
  }

  /** The socket may have room again (a write completed, a connection was greeted). */
  drained(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // Lines that come from one read of the output leave together.
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.channel.writable && this.channel.buffered <= IDLE_BUFFERED_BYTES) {
      const i = this.turns.findIndex((k) => this.jobs.get(k)!.log.waiting > 0);
      if (i === -1) return;
      const key = this.turns[i]!;
      this.turns.splice(i, 1);
      this.turns.push(key);
      const entry = this.jobs.get(key)!;
      const lines = entry.log.take()!;
      this.channel.send({ type: "job_log", payload: { ...entry.ref, seq: entry.seq++, lines } });
      this.settle(key, entry);
    }
  }

  private settle(key: string, entry: Entry): void {
    if (!entry.finished || !entry.log.done) return;
    entry.finished();
    this.jobs.delete(key);
    this.turns = this.turns.filter((k) => k !== key);
  }
}
