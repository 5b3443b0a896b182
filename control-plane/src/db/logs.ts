import { and, asc, desc, eq, gt, or, sql } from "drizzle-orm";
import type { LogLine, LogStream } from "../../../protocol/index.ts";
import type { Db } from "./client.ts";
import { logChunks } from "./schema.ts";

/** What `GET /v1/jobs/:id` shows of each stream: its last 64 KiB. */
export const TAIL_BYTES = 64 * 1024;

export interface LogCursor {
  attempt: number;
  seq: number;
}

export const formatCursor = (c: LogCursor) => `${c.attempt}.${c.seq}`;
export function parseCursor(raw: string): LogCursor | null {
  const m = /^(\d+)\.(\d+)$/.exec(raw);
  return m ? { attempt: Number(m[1]), seq: Number(m[2]) } : null;
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

export type StoredLine = { attempt: number; seq: number; stream: LogStream; ts: number; text: string };

/** Log lines after a cursor, in the order the agent produced them; at most `maxChunks` batches. */
export async function readLog(db: Db, jobId: string, after: LogCursor | null, maxChunks: number) {
  const rows = await db
    .select()
    .from(logChunks)
    .where(
      and(
        eq(logChunks.jobId, jobId),
        after
          ? or(gt(logChunks.attempt, after.attempt), and(eq(logChunks.attempt, after.attempt), gt(logChunks.seq, after.seq)))
          : undefined,
      ),
    )
    .orderBy(asc(logChunks.attempt), asc(logChunks.seq))
    .limit(maxChunks * 3);
  // Whole batches only: a batch split over two pages would lose a stream's lines.
  const lastSeq = rows.length === maxChunks * 3 ? rows.at(-1) : undefined;
  const kept = lastSeq ? rows.filter((r) => r.attempt !== lastSeq.attempt || r.seq !== lastSeq.seq) : rows;
  const entries = kept.flatMap((r) =>
    r.lines.map(([i, ts, text]) => ({ key: [r.attempt, r.seq, i] as const, line: { attempt: r.attempt, seq: r.seq, stream: r.stream, ts, text } })),
  );
  entries.sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || a.key[2] - b.key[2]);
  const last = kept.at(-1);
  return { lines: entries.map((e) => e.line) as StoredLine[], cursor: last ? { attempt: last.attempt, seq: last.seq } : after };
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
