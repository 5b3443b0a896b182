import { describe, expect, it } from "vitest";
import { EVICTED_KEPT, lostMarker, resumePlan, SentLog, type SentBatch } from "../../agent/src/log-resume.ts";
import { LogSender, type LogChannel } from "../../agent/src/log-sender.ts";
import { DEFAULT_LOG_LIMITS } from "../../agent/src/runner/log-collector.ts";
import type { AgentToCoordinator, LogLine } from "../../protocol/index.ts";

const lines = (...texts: string[]): LogLine[] => texts.map((text) => ({ stream: "stdout", text, ts: 1 }));
const batch = (seq: number, ...texts: string[]): SentBatch => ({ seq, lines: lines(...texts), bytes: texts.reduce((n, t) => n + t.length + 1, 0) });

describe("resumePlan", () => {
  it("re-sends the kept batches after the coordinator's last, in order, and counts the evicted ones after it", () => {
    const kept = [batch(3, "d"), batch(4, "e"), batch(5, "f")];
    expect(resumePlan(kept, [], 3)).toEqual({ lost: null, resend: [kept[1], kept[2]] });
    expect(resumePlan(kept, [], 5)).toEqual({ lost: null, resend: [] });
    const evicted = [
      { seq: 0, lines: 10, bytes: 100 },
      { seq: 1, lines: 20, bytes: 200 },
      { seq: 2, lines: 30, bytes: 3 * 1024 * 1024 },
    ];
    expect(resumePlan(kept, evicted, 0)).toEqual({ lost: { lines: 50, bytes: 200 + 3 * 1024 * 1024 }, resend: kept });
    expect(resumePlan(kept, evicted, -1).lost).toEqual({ lines: 60, bytes: 300 + 3 * 1024 * 1024 });
    expect(resumePlan(kept, evicted, 2).lost).toBeNull();
  });

  it("writes the loss as the log cap's marker counts", () => {
    expect(lostMarker(12_345, 3.4 * 1024 * 1024)).toBe("[gridx: 12,345 lines / 3.4 MiB lost in a reconnect]");
  });
});

describe("SentLog", () => {
  it("keeps the newest batches within its bytes, always the last, and counts the ones it lets go", () => {
    const log = new SentLog(10);
    log.add(0, lines("aaaa")); // 5 bytes
    log.add(1, lines("bbbb"));
    log.add(2, lines("cccc")); // 15 bytes: batch 0 goes
    log.add(3, lines("x".repeat(20))); // larger than the ring alone: still kept
    const plan = log.resume(-1);
    expect(plan.resend.map((b) => b.seq)).toEqual([3]);
    expect(plan.lost).toEqual({ lines: 3, bytes: 15 });
    // What the coordinator has is let go: a later resume after it reports no loss.
    expect(log.resume(2).lost).toBeNull();
  });

  it("bounds what it counts by merging the oldest counts, never losing a line of the count", () => {
    const log = new SentLog(1);
    for (let seq = 0; seq <= EVICTED_KEPT * 3; seq++) log.add(seq, lines("z"));
    expect(log.resume(-1).lost).toEqual({ lines: EVICTED_KEPT * 3, bytes: EVICTED_KEPT * 3 * 2 });
  });
});

describe("LogSender after a reconnect", () => {
  const channel = () => {
    const sent: AgentToCoordinator[] = [];
    const ch: LogChannel & { sent: AgentToCoordinator[] } = { writable: true, buffered: 0, send: (m) => sent.push(m), sent };
    return ch;
  };
  const tick = () => new Promise((r) => setImmediate(r));
  const ref = { job_id: "j_1", attempt: 1 };

  it("holds a job's newer lines until its log_resume, then re-sends the lost ones first", async () => {
    const ch = channel();
    const resumed: string[] = [];
    const sender = new LogSender(ch, DEFAULT_LOG_LIMITS, () => 1, (r) => resumed.push(r.job_id), 60_000);
    const log = sender.open(ref, 1 << 20);
    log.write("stdout", Buffer.from("a\n"));
    await tick();
    log.write("stdout", Buffer.from("b\n"));
    await tick();
    sender.reconnected();
    expect(sender.holding(ref)).toBe(true);
    log.write("stdout", Buffer.from("c\n"));
    await tick();
    expect(ch.sent).toHaveLength(2);
    sender.resume(ref, 0);
    await tick();
    expect(ch.sent.map((m) => m.type === "job_log" && [m.payload.seq, m.payload.lines[0]!.text])).toEqual([
      [0, "a"],
      [1, "b"],
      [1, "b"],
      [2, "c"],
    ]);
    expect(resumed).toEqual(["j_1"]);
    expect(sender.holding(ref)).toBe(false);
  });

  it("sends the count of evicted lines first, on the first seq the coordinator lacks", async () => {
    const ch = channel();
    const sender = new LogSender(ch, { ...DEFAULT_LOG_LIMITS, batchBytes: 10 }, () => 7);
    const log = sender.open(ref, 1 << 30);
    // 85 batches of one 60 KiB line: the ring's 4 MiB keeps the newest 68, so batches 0-16 are only counted.
    const big = "y".repeat(60 * 1024);
    for (let i = 0; i < 85; i++) {
      log.write("stdout", Buffer.from(`${big}\n`));
      await tick();
    }
    sender.reconnected();
    ch.sent.length = 0;
    sender.resume(ref, 2);
    const first = ch.sent[0]!;
    expect(first.type === "job_log" && first.payload).toMatchObject({ seq: 3, lines: [{ stream: "system", text: "[gridx: 14 lines / 840.0 KiB lost in a reconnect]", ts: 7 }] });
    const seqs = ch.sent.slice(1).map((m) => (m.type === "job_log" ? m.payload.seq : -1));
    expect(seqs).toEqual(Array.from({ length: 68 }, (_, i) => 17 + i));
  });

  it("lets a held job go when no log_resume comes within its wait, or when it is canceled as stale", async () => {
    const ch = channel();
    const resumed: string[] = [];
    const sender = new LogSender(ch, DEFAULT_LOG_LIMITS, () => 1, (r) => resumed.push(r.job_id), 20);
    const log = sender.open(ref, 1 << 20);
    log.write("stdout", Buffer.from("a\n"));
    await tick();
    sender.reconnected();
    await new Promise<void>((done) => {
      const poll = () => (resumed.length ? done() : setTimeout(poll, 5));
      poll();
    });
    expect(sender.holding(ref)).toBe(false);
    sender.reconnected();
    sender.stopHolding(ref);
    expect(sender.holding(ref)).toBe(false);
  });
});
