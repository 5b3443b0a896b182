import { DurableObject } from "cloudflare:workers";
import { TERMINAL_STATUSES, type JobStatus, type LogLine } from "../../../protocol/index.ts";
import { createDb, type Db } from "../db/client.ts";
import { Faults, faultsEnabled, faultyD1, type FaultPlan } from "../coordinator/faults.ts";
import { getJob } from "../db/jobs.ts";
import { chunkRows, compareCursor, formatCursor, lineCursor, parseCursor, publicLine, windowBytes, type LogCursor, type StoredLine } from "../db/logs.ts";
import { logChunks, logSegments } from "../db/schema.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { settingsOf, type Settings } from "../settings.ts";
import { FollowerSet, newWriter, type Follower } from "../streams/followers.ts";
import { FOLLOWER_MAX_QUEUED_BYTES, SSE_HEADERS, type SseEvent } from "../streams/sse.ts";
import { moveToSegments, readLogPage, type LogStore } from "./store.ts";
import { and, eq, max } from "drizzle-orm";

/** How a job ended, as its followers' `end` event says. */
export interface JobEnd {
  status: JobStatus;
  exit_code: number | null;
  failure_reason: string | null;
}

interface LogFollower extends Follower {
  cursor: LogCursor | null;
  /** While it catches up: the batches pushed meanwhile, sent after what storage had. */
  pending: StoredLine[][];
  pendingBytes: number;
}

const lineBytes = (lines: readonly StoredLine[]) => lines.reduce((n, l) => n + l.text.length + 64, 0);

/**
 * One per job (`idFromName(jobId)`): the writer of the job's log and the fan-out to its
 * followers. The coordinator hands it each admitted batch; it stores it (D1, then R2 segments
 * past the window) and pushes it to every follower at once, so followers cost no D1 reads while
 * the job runs and never load the pool's coordinator (decision 0016). A follower first catches
 * up from storage after its cursor; batches pushed meanwhile wait and go out after, each line
 * once, in order. Nothing here is the record: D1 and R2 are; a restart loses only open streams,
 * whose readers resume by cursor.
 */
export class LogStream extends DurableObject<Bindings> {
  private readonly db: Db;
  private readonly faults: Faults | null;
  private readonly settings: Settings;
  private readonly followers: FollowerSet<LogFollower>;
  private jobId: string | null = null;
  private ended: JobEnd | null = null;
  /** Per attempt: what D1 holds of its log, and the last batch already moved to R2. */
  private readonly held = new Map<number, { bytes: number; movedThrough: number }>();
  private moving: Promise<void> | null = null;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.faults = faultsEnabled(env) ? new Faults() : null;
    this.db = createDb(this.faults ? faultyD1(env.DB, this.faults) : env.DB);
    this.settings = settingsOf(env);
    this.followers = new FollowerSet<LogFollower>(this.settings, () => this.backstop(), () => `log stream ${this.jobId}`);
  }

  private get store(): LogStore {
    return { db: this.db, bucket: this.env.BUCKET };
  }

  /**
   * Stores one batch and pushes it to followers. Throws when D1 fails, so the caller (the
   * coordinator, which admitted the batch) retries; a batch stored twice lands on its key once.
   */
  async append(jobId: string, attempt: number, seq: number, lines: LogLine[]): Promise<void> {
    this.jobId = jobId;
    const held = await this.heldOf(jobId, attempt);
    // Already moved to R2 (a batch re-sent after a reconnect): storing it again would show it twice.
    if (seq <= held.movedThrough) return;
    const rows = chunkRows(jobId, attempt, seq, lines);
    await this.db.batch(rows.map((row) => this.db.insert(logChunks).values(row).onConflictDoNothing()) as [never, ...never[]]);
    held.bytes += rows.reduce((n, r) => n + r.bytes, 0);
    const stored = lines.map((l, index) => ({ attempt, seq, index, ...l }));
    for (const f of this.followers.all) this.deliver(f, stored);
    if (held.bytes > this.settings.LOG_D1_WINDOW_BYTES && !this.moving) this.moving = this.moveOld(jobId, attempt).finally(() => (this.moving = null));
  }

  /** The last batch of an attempt stored (in D1 or moved to R2), or -1: where a reconnected agent resumes its log. */
  async lastSeq(jobId: string, attempt: number): Promise<number> {
    const [[chunk], moved] = await Promise.all([
      this.db.select({ seq: max(logChunks.seq) }).from(logChunks).where(and(eq(logChunks.jobId, jobId), eq(logChunks.attempt, attempt))),
      this.movedThrough(jobId, attempt),
    ]);
    return Math.max(chunk?.seq ?? -1, moved);
  }

  /** The fault suite's hook (GRIDX_FAULTS=on only), as the coordinator's. */
  async injectFaults(plan: FaultPlan | undefined): Promise<{ injected: number }> {
    if (!this.faults) throw new Error("fault injection is off (GRIDX_FAULTS)");
    if (plan) this.faults.set(plan);
    return { injected: this.faults.injected };
  }

  /**
   * The job ended (the coordinator says so after its last batch was stored): followers get
   * `end` after every line, and their streams close. Without followers it costs no read.
   */
  async end(jobId: string): Promise<void> {
    this.jobId = jobId;
    if (this.followers.size === 0) return;
    const end = await this.endedInD1(jobId);
    if (!end) return;
    this.ended = end;
    for (const f of this.followers.all) if (!f.catchingUp) this.finish(f, end);
  }

  /** A follower: `GET /follow?job=&after=` answers a stream of `log` events, then `end`. */
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const jobId = url.searchParams.get("job");
    if (!jobId) return new Response("job is required", { status: 400 });
    this.jobId = jobId;
    const raw = url.searchParams.get("after");
    const f: LogFollower = {
      out: newWriter(),
      cursor: raw ? parseCursor(raw) : null,
      catchingUp: true,
      pending: [],
      pendingBytes: 0,
      startedAt: Date.now(),
      lastWriteAt: Date.now(),
      resumeAfter: () => (f.cursor ? formatCursor(f.cursor) : null),
    };
    this.followers.add(f);
    void this.catchUp(f).catch((err) => {
      console.error(`log stream ${jobId}: a follower's catch-up failed`, errorText(err));
      this.followers.drop(f);
    });
    return new Response(f.out.readable, { headers: SSE_HEADERS });
  }

  /** Storage after the follower's cursor until it has nothing newer, then what was pushed meanwhile. */
  private async catchUp(f: LogFollower): Promise<void> {
    const jobId = this.jobId!;
    f.catchingUp = true;
    for (;;) {
      const page = await readLogPage(this.store, jobId, f.cursor, this.settings.LOG_PAGE_BYTES);
      this.write(f, page.lines);
      if (page.cursor && (!f.cursor || compareCursor(page.cursor, f.cursor) > 0)) f.cursor = page.cursor;
      if (this.followers.sweepClosed(f)) return;
      if (!page.more) break;
    }
    f.catchingUp = false;
    for (const lines of f.pending.splice(0)) this.write(f, lines);
    f.pendingBytes = 0;
    const end = this.ended ?? (await this.endedInD1(jobId));
    if (end) this.finish(f, end);
  }

  private deliver(f: LogFollower, lines: StoredLine[]): void {
    if (!f.catchingUp) return this.write(f, lines);
    f.pending.push(lines);
    f.pendingBytes += lineBytes(lines);
    // Too much arrived while it caught up: closing is exact (it resumes after its last id).
    if (f.pendingBytes > FOLLOWER_MAX_QUEUED_BYTES) this.followers.drop(f);
  }

  private write(f: LogFollower, lines: readonly StoredLine[]): void {
    const events: SseEvent[] = [];
    for (const line of lines) {
      // Lines at or before the cursor were sent already (storage and a push can both bring one).
      const at = lineCursor(line);
      if (f.cursor && compareCursor(at, f.cursor) <= 0) continue;
      events.push({ event: "log", id: formatCursor(at), data: JSON.stringify(publicLine(line)) });
      f.cursor = at;
    }
    f.out.sendAll(events);
    if (lines.length) f.lastWriteAt = Date.now();
    this.followers.sweepClosed(f);
  }

  private finish(f: LogFollower, end: JobEnd): void {
    f.out.send({ event: "end", data: JSON.stringify(end) });
    this.followers.drop(f);
  }

  /** A job canceled or failed without a last batch (so without an end notice): one read for all followers. */
  private async backstop(): Promise<void> {
    if (this.ended || !this.jobId) return;
    const end = await this.endedInD1(this.jobId);
    if (!end) return;
    this.ended = end;
    for (const f of [...this.followers.all]) if (!f.catchingUp) await this.catchUp(f);
  }

  private async endedInD1(jobId: string): Promise<JobEnd | null> {
    const job = await getJob(this.db, jobId);
    if (!job) return { status: "canceled", exit_code: null, failure_reason: null };
    return TERMINAL_STATUSES.includes(job.status) ? { status: job.status, exit_code: job.exitCode, failure_reason: job.failureReason } : null;
  }

  private async heldOf(jobId: string, attempt: number) {
    let held = this.held.get(attempt);
    if (!held) {
      const [bytes, movedThrough] = await Promise.all([windowBytes(this.db, jobId, attempt), this.movedThrough(jobId, attempt)]);
      held = this.held.get(attempt) ?? { bytes, movedThrough };
      this.held.set(attempt, held);
    }
    return held;
  }

  private async movedThrough(jobId: string, attempt: number): Promise<number> {
    const [row] = await this.db.select({ seq: max(logSegments.lastSeq) }).from(logSegments).where(and(eq(logSegments.jobId, jobId), eq(logSegments.attempt, attempt)));
    return row?.seq ?? -1;
  }

  private async moveOld(jobId: string, attempt: number): Promise<void> {
    const held = await this.heldOf(jobId, attempt);
    try {
      // Down to the window less one segment, so the move is not redone on every next batch.
      held.bytes = await moveToSegments(this.store, jobId, attempt, { window: this.settings.LOG_D1_WINDOW_BYTES - this.settings.LOG_SEGMENT_BYTES, segment: this.settings.LOG_SEGMENT_BYTES });
      held.movedThrough = await this.movedThrough(jobId, attempt);
    } catch (err) {
      // The lines stay in D1; the next batch past the window tries again.
      console.error(`log stream ${jobId}: moving old batches to R2 failed`, errorText(err));
    }
  }
}

/** The log stream of one job. */
export function logStreamOf(env: Bindings, jobId: string): DurableObjectStub<LogStream> {
  const ns = env.LOG_STREAM as unknown as DurableObjectNamespace<LogStream>;
  return ns.get(ns.idFromName(jobId));
}
