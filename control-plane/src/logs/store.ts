import { and, between, eq } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { compareCursor, firstChunkAfter, linesOf, oldestBatches, readChunks, segmentAfter, windowBytes, type LogCursor, type SegmentRow, type StoredLine } from "../db/logs.ts";
import { logChunks, logSegments } from "../db/schema.ts";

/**
 * A job's log lives in two places: D1 holds a bounded window of each attempt's newest batches,
 * R2 the older ones in segments (one object each, JSON lines). Readers see one log.
 */
export interface LogStore {
  db: Db;
  bucket: R2Bucket;
}

export interface LogPage {
  lines: StoredLine[];
  /** The last batch this page covers: the next page starts after it. */
  cursor: LogCursor | null;
  /** Whether more lines were stored after this page when it was read. */
  more: boolean;
}

export const segmentKey = (jobId: string, attempt: number, firstSeq: number, lastSeq: number) => `logs/${jobId}/${attempt}/${firstSeq}-${lastSeq}.jsonl`;

/** The lines after a cursor, from R2 or D1, whichever holds the next ones; about `maxBytes` at most. */
export async function readLogPage(store: LogStore, jobId: string, after: LogCursor | null, maxBytes: number): Promise<LogPage> {
  const [segment, nextChunk] = await Promise.all([segmentAfter(store.db, jobId, after), firstChunkAfter(store.db, jobId, after)]);
  const segmentStart = segment ? { attempt: segment.attempt, seq: segment.firstSeq } : null;
  if (segment && segmentStart && (!nextChunk || compareCursor(segmentStart, nextChunk) <= 0)) {
    const lines = (await readSegment(store.bucket, segment)).filter((l) => !after || compareCursor({ attempt: l.attempt, seq: l.seq, index: l.index }, after) > 0);
    return { lines, cursor: { attempt: segment.attempt, seq: segment.lastSeq }, more: true };
  }
  const page = await readChunks(store.db, jobId, after, { maxBytes, before: segmentStart ?? undefined });
  return { lines: page.lines, cursor: page.cursor, more: page.more || segment !== undefined };
}

async function readSegment(bucket: R2Bucket, segment: SegmentRow): Promise<StoredLine[]> {
  const object = await bucket.get(segment.key);
  if (!object) {
    // Said, not skipped silently: the reader learns these batches are gone and goes on after them.
    const text = `[gridx: log batches ${segment.firstSeq}–${segment.lastSeq} of attempt ${segment.attempt} are missing from storage]`;
    return [{ attempt: segment.attempt, seq: segment.lastSeq, index: 0, stream: "system", ts: 0, text }];
  }
  const text = await object.text();
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as StoredLine);
}

/**
 * Moves an attempt's oldest batches to one R2 segment while D1 holds more than `window` bytes
 * of it. The object is written before D1 forgets the rows, so a failure in between leaves the
 * lines in D1 (and an object the next move overwrites): never lost, never shown twice.
 * Returns what D1 holds of the attempt afterwards.
 */
export async function moveToSegments(store: LogStore, jobId: string, attempt: number, opts: { window: number; segment: number }): Promise<number> {
  let held = await windowBytes(store.db, jobId, attempt);
  while (held > opts.window) {
    const rows = await oldestBatches(store.db, jobId, attempt, opts.segment);
    if (rows.length === 0) break;
    const firstSeq = rows[0]!.seq;
    const lastSeq = rows.at(-1)!.seq;
    const lines = linesOf(rows);
    const bytes = rows.reduce((n, r) => n + r.bytes, 0);
    const key = segmentKey(jobId, attempt, firstSeq, lastSeq);
    await store.bucket.put(key, lines.map((l) => JSON.stringify(l)).join("\n") + "\n", { httpMetadata: { contentType: "application/x-ndjson" } });
    await store.db.batch([
      store.db.insert(logSegments).values({ jobId, attempt, firstSeq, lastSeq, key, bytes, lines: lines.length }).onConflictDoNothing(),
      store.db.delete(logChunks).where(and(eq(logChunks.jobId, jobId), eq(logChunks.attempt, attempt), between(logChunks.seq, firstSeq, lastSeq))),
    ]);
    held -= bytes;
  }
  return held;
}
