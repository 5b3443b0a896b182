import { and, asc, desc, eq, gt, gte, lt, or, sql } from "drizzle-orm";
import type { LogLine, LogStream } from "../../../protocol/index.ts";
import type { Db } from "./client.ts";
import { logChunks, logSegments } from "./schema.ts";

/** What `GET /v1/jobs/:id` shows of each stream: its last 64 KiB. */
export const TAIL_BYTES = 64 * 1024;

/**
 * A place in a job's log: after batch `seq` of `attempt`, or, with `index`, after that line of
 * the batch (a follower that dropped mid-batch resumes at the next line, not the next batch).
 */
export interface LogCursor {
  attempt: number;
  seq: number;
  index?: number;
}

export const formatCursor = (c: LogCursor) => (c.index === undefined ? `${c.attempt}.${c.seq}` : `${c.attempt}.${c.seq}.${c.index}`);
export function parseCursor(raw: string): LogCursor | null {
  const m = /^(\d{1,9})\.(\d{1,12})(?:\.(\d{1,6}))?$/.exec(raw);
  if (!m) return null;
  return m[3] === undefined ? { attempt: Number(m[1]), seq: Number(m[2]) } : { attempt: Number(m[1]), seq: Number(m[2]), index: Number(m[3]) };
}

/** Orders two places by attempt, then batch, then line (a whole batch sorts after its lines). */
export function compareCursor(a: LogCursor, b: LogCursor): number {
  return a.attempt - b.attempt || a.seq - b.seq || (a.index ?? Infinity) - (b.index ?? Infinity);
}

const byteLength = (s: string) => new TextEncoder().encode(s).length;

/**
 * Splits one agent batch into a row per stream, each line keeping its place in the batch so
 * readers can put the streams back in order.
 */
export function chunkRows(jobId: string, attempt: number, seq: number, lines: readonly LogLine[]) {
  const byStream = new Map<LogStream, [number, number, string][]>();
  lines.forEach((line, i) => {
    const list = byStream.get(line.stream) ?? [];
    list.push([i, line.ts, line.text]);
    byStream.set(line.stream, list);
  });
  return [...byStream].map(([stream, entries]) => ({
    jobId,
    attempt,
    seq,
    stream,
    lines: entries,
    bytes: entries.reduce((n, [, , text]) => n + byteLength(text) + 1, 0),
  }));
}

/** A line as readers get it; `index` is its place in its batch. */
export type StoredLine = { attempt: number; seq: number; index: number; stream: LogStream; ts: number; text: string };

export const lineCursor = (l: StoredLine): LogCursor => ({ attempt: l.attempt, seq: l.seq, index: l.index });
/** What a reader shows of a line (its place travels as the event id or the page cursor). */
export const publicLine = ({ index: _index, ...line }: StoredLine) => line;

type ChunkRow = typeof logChunks.$inferSelect;

/** Puts the rows of whole batches back into the order the agent produced their lines. */
export function linesOf(rows: readonly ChunkRow[]): StoredLine[] {
  const lines = rows.flatMap((r) => r.lines.map(([index, ts, text]) => ({ attempt: r.attempt, seq: r.seq, index, stream: r.stream, ts, text })));
  return lines.sort((a, b) => a.attempt - b.attempt || a.seq - b.seq || a.index - b.index);
}

const afterCursor = (c: LogCursor) =>
  or(gt(logChunks.attempt, c.attempt), and(eq(logChunks.attempt, c.attempt), c.index === undefined ? gt(logChunks.seq, c.seq) : gte(logChunks.seq, c.seq)));

/** Rows read per query: a batch has at most four (one per stream). */
const ROWS_PER_READ = 400;

/**
 * D1's log lines after a cursor in the order the agent produced them, whole batches only, up to
 * about `maxBytes` of text (always at least one batch), and before `before` (a segment's start)
 * when given. `cursor` is the last batch returned; `more` says whether D1 holds more.
 */
export async function readChunks(db: Db, jobId: string, after: LogCursor | null, opts: { maxBytes: number; before?: LogCursor }) {
  const rows = await db
    .select()
    .from(logChunks)
    .where(
      and(
        eq(logChunks.jobId, jobId),
        after ? afterCursor(after) : undefined,
        opts.before ? or(lt(logChunks.attempt, opts.before.attempt), and(eq(logChunks.attempt, opts.before.attempt), lt(logChunks.seq, opts.before.seq))) : undefined,
      ),
    )
    .orderBy(asc(logChunks.attempt), asc(logChunks.seq))
    .limit(ROWS_PER_READ);
  // Whole batches only: a batch split over two reads would lose a stream's lines.
  const full = rows.length === ROWS_PER_READ;
  const last = full ? rows.at(-1) : undefined;
  let kept = last ? rows.filter((r) => r.attempt !== last.attempt || r.seq !== last.seq) : rows;
  let bytes = 0;
  let cut = kept.length;
  for (let i = 0; i < kept.length; i++) {
    const r = kept[i]!;
    const startsBatch = i === 0 || kept[i - 1]!.seq !== r.seq || kept[i - 1]!.attempt !== r.attempt;
    if (startsBatch && bytes >= opts.maxBytes && i > 0) {
      cut = i;
      break;
    }
    bytes += r.bytes;
  }
  const more = full || cut < kept.length;
  kept = kept.slice(0, cut);
  const lines = linesOf(kept).filter((l) => !after || compareCursor({ attempt: l.attempt, seq: l.seq, index: l.index }, after) > 0);
  const end = kept.at(-1);
  return { lines, cursor: end ? { attempt: end.attempt, seq: end.seq } : after, more, bytes };
}

/** The first batch D1 holds after a cursor, if any (where D1's part of the log resumes). */
export async function firstChunkAfter(db: Db, jobId: string, after: LogCursor | null): Promise<LogCursor | null> {
  const [row] = await db
    .select({ attempt: logChunks.attempt, seq: logChunks.seq })
    .from(logChunks)
    .where(and(eq(logChunks.jobId, jobId), after ? afterCursor(after) : undefined))
    .orderBy(asc(logChunks.attempt), asc(logChunks.seq))
    .limit(1);
  return row ?? null;
}

export type SegmentRow = typeof logSegments.$inferSelect;

/** The first R2 segment holding lines after a cursor. */
export async function segmentAfter(db: Db, jobId: string, after: LogCursor | null): Promise<SegmentRow | undefined> {
  const [row] = await db
    .select()
    .from(logSegments)
    .where(
      and(
        eq(logSegments.jobId, jobId),
        after
          ? or(gt(logSegments.attempt, after.attempt), and(eq(logSegments.attempt, after.attempt), after.index === undefined ? gt(logSegments.lastSeq, after.seq) : gte(logSegments.lastSeq, after.seq)))
          : undefined,
      ),
    )
    .orderBy(asc(logSegments.attempt), asc(logSegments.firstSeq))
    .limit(1);
  return row;
}

/** What D1 holds of one attempt's log, in bytes of text. */
export async function windowBytes(db: Db, jobId: string, attempt: number): Promise<number> {
  const [row] = await db
    .select({ bytes: sql<number>`coalesce(sum(${logChunks.bytes}), 0)` })
    .from(logChunks)
    .where(and(eq(logChunks.jobId, jobId), eq(logChunks.attempt, attempt)));
  return row?.bytes ?? 0;
}

/** The oldest whole batches of an attempt in D1, at least `bytes` of them (or all there are). */
export async function oldestBatches(db: Db, jobId: string, attempt: number, bytes: number) {
  const picked: ChunkRow[] = [];
  let total = 0;
  let after = -1;
  while (total < bytes) {
    const rows = await db
      .select()
      .from(logChunks)
      .where(and(eq(logChunks.jobId, jobId), eq(logChunks.attempt, attempt), gt(logChunks.seq, after)))
      .orderBy(asc(logChunks.seq))
      .limit(ROWS_PER_READ);
    if (rows.length === 0) break;
    const full = rows.length === ROWS_PER_READ;
    const lastSeq = rows.at(-1)!.seq;
    for (const r of rows) {
      if (full && r.seq === lastSeq) break;
      if (total >= bytes && r.seq !== picked.at(-1)?.seq) return picked;
      picked.push(r);
      total += r.bytes;
    }
    if (!full) break;
    after = picked.at(-1)?.seq ?? after;
  }
  return picked;
}

/** The last `TAIL_BYTES` of one stream of one attempt, as text. */
export async function tailStream(db: Db, jobId: string, attempt: number, stream: "stdout" | "stderr"): Promise<string> {
  const parts: string[] = [];
  let bytes = 0;
  let before = Number.MAX_SAFE_INTEGER;
  while (bytes < TAIL_BYTES) {
    const rows = await db
      .select()
      .from(logChunks)
      .where(and(eq(logChunks.jobId, jobId), eq(logChunks.attempt, attempt), eq(logChunks.stream, stream), sql`${logChunks.seq} < ${before}`))
      .orderBy(desc(logChunks.seq))
      .limit(32);
    for (const row of rows) {
      const text = row.lines.map(([, , t]) => t + "\n").join("");
      parts.unshift(text);
      bytes += row.bytes;
      if (bytes >= TAIL_BYTES) break;
    }
    if (rows.length < 32) break;
    before = rows.at(-1)!.seq;
  }
  const text = parts.join("");
  if (byteLength(text) <= TAIL_BYTES) return text;
  const encoded = new TextEncoder().encode(text);
  // Cut at a byte boundary, then drop a broken first character rather than emit U+FFFD.
  return new TextDecoder().decode(encoded.slice(encoded.length - TAIL_BYTES)).replace(/^\uFFFD/, "");
}

/** The newest whole batches of the job (any attempt), about `bytes` of them, oldest first. */
export async function newestBatches(db: Db, jobId: string, bytes: number): Promise<StoredLine[]> {
  const rows = await db.select().from(logChunks).where(eq(logChunks.jobId, jobId)).orderBy(desc(logChunks.attempt), desc(logChunks.seq)).limit(ROWS_PER_READ);
  const picked: ChunkRow[] = [];
  let total = 0;
  for (const r of rows) {
    const prev = picked.at(-1);
    if (total >= bytes && (prev?.seq !== r.seq || prev.attempt !== r.attempt)) break;
    picked.push(r);
    total += r.bytes;
  }
  // The oldest batch may be only partly read when the rows ran out mid-batch: drop it.
  if (rows.length === ROWS_PER_READ && total < bytes) {
    const first = picked.at(-1)!;
    return linesOf(picked.filter((r) => r.attempt !== first.attempt || r.seq !== first.seq));
  }
  return linesOf(picked);
}
