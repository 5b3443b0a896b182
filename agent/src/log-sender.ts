import type { AgentToCoordinator, AttemptRef } from "../../protocol/index.ts";
import { lostMarker, SentLog } from "./log-resume.ts";
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
 * How long after a reconnect an attempt's log (and result) waits for its `log_resume`; the
 * coordinator sends it right after the hello, so this is only a backstop for one that never
 * comes (a coordinator that could not read the log's last batch, or an older one).
 */
export const RESUME_WAIT_MS = 10_000;

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
  /** Per attempt, what was handed to the socket: kept until its result is acknowledged (`forget`). */
  private readonly sent = new Map<string, { ref: AttemptRef; log: SentLog }>();
  /** Attempts held since a reconnect until their `log_resume`: nothing newer of theirs goes out before the re-sent batches. */
  private readonly resuming = new Set<string>();
  private resumeTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly channel: LogChannel,
    private readonly limits: LogLimits,
    private readonly now: () => number = Date.now,
    /** An attempt's hold after a reconnect ended (its log_resume came, or the wait ran out): its result may go. */
    private readonly resumed: (ref: AttemptRef) => void = () => undefined,
    private readonly resumeWaitMs = RESUME_WAIT_MS,
  ) {}

  /** Begins a job's log; the same attempt opened again (a re-sent assignment) gets the one it has. */
  open(ref: AttemptRef, capBytes: number): JobLog {
    const key = keyOf(ref);
    const known = this.jobs.get(key);
    if (known) return known.log;
    const log = new JobLog(this.limits, capBytes, () => this.schedule(), this.now);
    this.jobs.set(key, { ref, log, seq: 0, finished: null });
    this.sent.set(key, { ref, log: new SentLog() });
    this.turns.push(key);
    return log;
  }

  /**
   * A new connection was greeted: every attempt with a log sent over an earlier one waits for
   * the coordinator's `log_resume` (or `resumeWaitMs`) before any more of it goes out.
   */
  reconnected(): void {
    for (const [key, sent] of this.sent) if (!sent.log.empty) this.resuming.add(key);
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = null;
      for (const key of [...this.resuming]) this.release(key);
    }, this.resumeWaitMs).unref();
  }

  /**
   * The coordinator stored this attempt's batches through `afterSeq`: the later ones kept are
   * sent again, in order, after a count of any no longer kept, then the log goes on.
   */
  resume(ref: AttemptRef, afterSeq: number): void {
    const key = keyOf(ref);
    const sent = this.sent.get(key);
    if (!sent || !this.resuming.has(key)) return;
    const plan = sent.log.resume(afterSeq);
    // The lost batches' first seq is free: the coordinator stored none after afterSeq.
    if (plan.lost) this.channel.send({ type: "job_log", payload: { ...ref, seq: afterSeq + 1, lines: [{ stream: "system", text: lostMarker(plan.lost.lines, plan.lost.bytes), ts: this.now() }] } });
    for (const b of plan.resend) this.channel.send({ type: "job_log", payload: { ...ref, seq: b.seq, lines: b.lines } });
    this.release(key);
  }

  /** Whether the attempt's result must wait for its log_resume. */
  holding(ref: AttemptRef): boolean {
    return this.resuming.has(keyOf(ref));
  }

  /** The coordinator will send no log_resume for this attempt (it is not this agent's): stop holding it. */
  stopHolding(ref: AttemptRef): void {
    this.release(keyOf(ref));
  }

  /** The attempt's result was acknowledged: its sent batches are let go. */
  forget(ref: AttemptRef): void {
    const key = keyOf(ref);
    this.sent.delete(key);
    this.resuming.delete(key);
  }

  private release(key: string): void {
    if (!this.resuming.delete(key)) return;
    this.schedule();
    const sent = this.sent.get(key);
    if (sent) this.resumed(sent.ref);
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
    this.sent.clear();
    this.resuming.clear();
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
      const i = this.turns.findIndex((k) => !this.resuming.has(k) && this.jobs.get(k)!.log.waiting > 0);
      if (i === -1) return;
      const key = this.turns[i]!;
      this.turns.splice(i, 1);
      this.turns.push(key);
      const entry = this.jobs.get(key)!;
      const lines = entry.log.take()!;
      const seq = entry.seq++;
      this.channel.send({ type: "job_log", payload: { ...entry.ref, seq, lines } });
      this.sent.get(key)?.log.add(seq, lines);
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
