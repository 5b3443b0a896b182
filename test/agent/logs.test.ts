import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { IDLE_BUFFERED_BYTES, LogSender, type LogChannel } from "../../agent/src/log-sender.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { JobLogFile } from "../../agent/src/runner/job-log.ts";
import { capMarker, DEFAULT_LOG_LIMITS, formatBytes, JobLog, LineSplitter, LogCap, type LogLimits } from "../../agent/src/runner/log-collector.ts";
import { SecretMasker } from "../../agent/src/runner/masking.ts";
import { MAX_LOG_BATCH_LINES, type AgentToCoordinator, type LogLine, type MessageOf } from "../../protocol/index.ts";

type JobLogMsg = MessageOf<AgentToCoordinator, "job_log">;

const limits = (over: Partial<LogLimits> = {}): LogLimits => ({ ...DEFAULT_LOG_LIMITS, ...over });
const tick = () => new Promise<void>((r) => setImmediate(r));

describe("LineSplitter", () => {
  const collect = (max: number) => {
    const out: { text: string; bytes: number }[] = [];
    return { out, s: new LineSplitter("stdout", max, (_s, text, bytes) => out.push({ text, bytes })) };
  };

  it("joins lines across chunks, reads \\r\\n as an end, and keeps multi-byte characters whole", () => {
    const { out, s } = collect(100);
    const euro = Buffer.from("€");
    s.write(Buffer.concat([Buffer.from("ab"), euro.subarray(0, 1)]));
    s.write(Buffer.concat([euro.subarray(1), Buffer.from("c\r\n\nnext\n")]));
    s.write(Buffer.from("tail"));
    s.end();
    expect(out).toEqual([
      { text: "ab€c", bytes: 8 },
      { text: "", bytes: 1 },
      { text: "next", bytes: 5 },
      { text: "tail", bytes: 5 },
    ]);
  });

  it("splits a long line into consecutive pieces of at most the limit, sent before the line ends, that concatenate to it", () => {
    const { out, s } = collect(10);
    const line = "0123456789abcdefghij€€€klmnop";
    const bytes = Buffer.from(line);
    s.write(bytes.subarray(0, 25));
    // The first pieces left without waiting for the newline.
    expect(out.length).toBeGreaterThanOrEqual(2);
    s.write(Buffer.concat([bytes.subarray(25), Buffer.from("\nshort\n")]));
    const texts = out.map((o) => o.text);
    expect(texts.at(-1)).toBe("short");
    const pieces = texts.slice(0, -1);
    expect(pieces.join("")).toBe(line);
    expect(pieces.every((p) => Buffer.byteLength(p) <= 10)).toBe(true);
    expect(pieces.some((p) => p.includes("\ufffd"))).toBe(false);
  });

  it("splits a line of exactly a multiple of the limit into full pieces and no empty one", () => {
    const { out, s } = collect(4);
    s.write(Buffer.from("aaaabbbb\n"));
    expect(out.map((o) => o.text)).toEqual(["aaaa", "bbbb"]);
  });
});

describe("the log cap's marker", () => {
  it("reads [gridx: N lines / size dropped: log cap LOG_MAX_BYTES] with grouped counts and one decimal", () => {
    expect(capMarker(12_345, Math.round(3.4 * 1024 * 1024))).toBe("[gridx: 12,345 lines / 3.4 MiB dropped: log cap LOG_MAX_BYTES]");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(2 * 1024 ** 3)).toBe("2.0 GiB");
  });

  it("keeps lines while they fit, then counts every later one, even one that would fit", () => {
    const cap = new LogCap(10);
    expect([cap.admit(4), cap.admit(6), cap.marker()]).toEqual([true, true, null]);
    expect([cap.admit(5), cap.admit(1)]).toEqual([false, false]);
    expect(cap.marker()).toBe("[gridx: 2 lines / 6 B dropped: log cap LOG_MAX_BYTES]");
  });
});

describe("JobLog", () => {
  const drain = (log: JobLog) => {
    const lines: LogLine[] = [];
    for (let b = log.take(); b; b = log.take()) lines.push(...b);
    return lines;
  };

  it("past its cap counts lines instead of keeping them, and ends with the failure, then exactly one count marker", () => {
    const log = new JobLog(limits(), 20, () => undefined, () => 7);
    log.write("stdout", Buffer.from("0123456789\n0123456\n"));
    log.write("stderr", Buffer.from("over the cap\nx\n"));
    log.system("[gridx: the agent's own line]");
    log.end("[gridx: timeout: the job ran too long]");
    const lines = drain(log);
    expect(lines.map((l) => [l.stream, l.text])).toEqual([
      ["stdout", "0123456789"],
      ["stdout", "0123456"],
      ["system", "[gridx: log cap LOG_MAX_BYTES (20 B) reached: further lines are counted, not kept]"],
      ["system", "[gridx: the agent's own line]"],
      ["system", "[gridx: timeout: the job ran too long]"],
      ["system", "[gridx: 2 lines / 15 B dropped: log cap LOG_MAX_BYTES]"],
    ]);
    expect(lines.every((l) => l.ts === 7)).toBe(true);
    expect(log.done).toBe(true);
  });

  it("ends without a marker when nothing was dropped", () => {
    const log = new JobLog(limits(), 1000, () => undefined);
    log.write("stdout", Buffer.from("a\nb"));
    log.end();
    expect(drain(log).map((l) => l.text)).toEqual(["a", "b"]);
  });

  it("is congested from its high-water mark until it is back down to its low-water mark", () => {
    // Two lines a batch (37 bytes of text each); each costs 100 bytes while it waits (with its overhead).
    const log = new JobLog(limits({ highWaterBytes: 1000, lowWaterBytes: 300, batchBytes: 80 }), 1e9, () => undefined);
    const line = Buffer.from("x".repeat(36) + "\n");
    for (let i = 0; i < 9; i++) log.write("stdout", line);
    expect(log.congested()).toBe(false);
    log.write("stdout", line);
    expect(log.congested()).toBe(true);
    const waiting: boolean[] = [];
    for (let b = log.take(); b; b = log.take()) waiting.push(log.congested());
    // 800, 600, 400 still congested; 200 and 0 relieved.
    expect(waiting).toEqual([true, true, true, false, false]);
  });

  it("takes batches within the byte and line bounds, at least one line each", () => {
    const log = new JobLog(limits({ batchBytes: 1e9, batchLines: 1e9 }), 1e9, () => undefined);
    for (let i = 0; i < MAX_LOG_BATCH_LINES * 2 + 1; i++) log.write("stdout", Buffer.from("x\n"));
    const sizes: number[] = [];
    for (let b = log.take(); b; b = log.take()) sizes.push(b.length);
    expect(sizes).toEqual([MAX_LOG_BATCH_LINES, MAX_LOG_BATCH_LINES, 1]);
    const big = new JobLog(limits({ batchBytes: 10 }), 1e9, () => undefined);
    big.write("stdout", Buffer.from("a long line, longer than a batch\nb\n"));
    expect([big.take()?.length, big.take()?.length, big.take()]).toEqual([1, 1, null]);
  });
});

/** A socket stand-in whose buffered bytes the test sets; what is sent adds to them, as on a socket that does not write. */
function fakeChannel() {
  const sent: JobLogMsg[] = [];
  let arrived: (() => void) | null = null;
  const channel = {
    writable: true as boolean,
    bufferedAmount: 0,
    get buffered() {
      return this.bufferedAmount;
    },
    send(msg: AgentToCoordinator) {
      if (msg.type !== "job_log") throw new Error(`unexpected ${msg.type}`);
      sent.push(msg);
      this.bufferedAmount += JSON.stringify(msg).length;
      arrived?.();
    },
  } satisfies LogChannel & { bufferedAmount: number };
  /** Resolves once `n` batches were sent. */
  const batches = async (n: number) => {
    while (sent.length < n) await new Promise<void>((r) => (arrived = r));
    return sent;
  };
  return { channel, sent, batches };
}

const ref = (job_id: string) => ({ job_id, attempt: 1 });
const texts = (msgs: JobLogMsg[], job: string) => msgs.filter((m) => m.payload.job_id === job).flatMap((m) => m.payload.lines.map((l) => l.text));

describe("LogSender", () => {
  it("sends a line on the next tick when the socket is idle, without waiting for more", async () => {
    const { channel, batches } = fakeChannel();
    const sender = new LogSender(channel, limits());
    const log = sender.open(ref("j1"), 1e9);
    log.write("stdout", Buffer.from("first\nsecond\n"));
    const [batch] = await batches(1);
    expect(batch!.payload).toMatchObject({ job_id: "j1", attempt: 1, seq: 0 });
    expect(batch!.payload.lines.map((l) => l.text)).toEqual(["first", "second"]);
    log.write("stdout", Buffer.from("third\n"));
    expect((await batches(2))[1]!.payload).toMatchObject({ seq: 1, lines: [{ text: "third" }] });
  });

  it("while the socket is busy gathers lines into the next batch, sent once it drains", async () => {
    const { channel, sent, batches } = fakeChannel();
    const sender = new LogSender(channel, limits());
    const log = sender.open(ref("j1"), 1e9);
    channel.bufferedAmount = IDLE_BUFFERED_BYTES + 1;
    for (let i = 0; i < 50; i++) {
      log.write("stdout", Buffer.from(`line ${i}\n`));
      await tick();
    }
    expect(sent).toHaveLength(0);
    channel.bufferedAmount = 0;
    sender.drained();
    const [batch] = await batches(1);
    expect(batch!.payload.lines.map((l) => l.text)).toEqual(Array.from({ length: 50 }, (_, i) => `line ${i}`));
  });

  it("waits for a connection and sends nothing while there is none", async () => {
    const { channel, sent, batches } = fakeChannel();
    const sender = new LogSender(channel, limits());
    channel.writable = false;
    sender.open(ref("j1"), 1e9).write("stdout", Buffer.from("while away\n"));
    await tick();
    expect(sent).toHaveLength(0);
    channel.writable = true;
    sender.drained();
    expect(texts(await batches(1), "j1")).toEqual(["while away"]);
  });

  it("takes turns between jobs: a flooding job's backlog does not hold another job's line back by more than a batch", async () => {
    const { channel, batches } = fakeChannel();
    const sender = new LogSender(channel, limits({ batchBytes: 1000 }));
    channel.bufferedAmount = IDLE_BUFFERED_BYTES + 1;
    const flood = sender.open(ref("flood"), 1e9);
    const quiet = sender.open(ref("quiet"), 1e9);
    for (let i = 0; i < 1000; i++) flood.write("stdout", Buffer.from(`flood ${i}\n`));
    await tick();
    quiet.write("stdout", Buffer.from("quiet line\n"));
    channel.bufferedAmount = 0;
    sender.drained();
    const sent = await batches(2);
    expect(sent.slice(0, 3).map((m) => m.payload.job_id)).toEqual(["flood", "quiet", "flood"]);
    expect(sent[1]!.payload.lines.map((l) => l.text)).toEqual(["quiet line"]);
    // The socket filled up again: the rest of the flood waits for it, not in memory of the socket.
    expect(channel.bufferedAmount).toBeGreaterThan(IDLE_BUFFERED_BYTES);
    expect(flood.waiting).toBeGreaterThan(0);
  });

  it("resolves a job's finish once its whole log, marker last, is handed to the socket", async () => {
    const { channel, sent } = fakeChannel();
    const sender = new LogSender(channel, limits({ batchBytes: 200 }));
    channel.bufferedAmount = IDLE_BUFFERED_BYTES + 1;
    const log = sender.open(ref("j1"), 30);
    for (let i = 0; i < 20; i++) log.write("stdout", Buffer.from(`line ${i}\n`));
    let finished = false;
    const finishing = sender.finish(ref("j1"), null).then(() => (finished = true));
    await tick();
    expect(finished).toBe(false);
    channel.bufferedAmount = 0;
    sender.drained();
    await finishing;
    const all = texts(sent, "j1");
    expect(all.at(-1)).toBe("[gridx: 16 lines / 122 B dropped: log cap LOG_MAX_BYTES]");
    expect(all.slice(0, 4)).toEqual(["line 0", "line 1", "line 2", "line 3"]);
    expect(sent.map((m) => m.payload.seq)).toEqual(sent.map((_, i) => i));
  });

  it("lets every finish go when the agent gives up on sending", async () => {
    const { channel } = fakeChannel();
    channel.writable = false;
    const sender = new LogSender(channel, limits());
    sender.open(ref("j1"), 1e9).write("stdout", Buffer.from("never sent\n"));
    const finishing = sender.finish(ref("j1"));
    sender.abandon();
    await expect(finishing).resolves.toBeUndefined();
  });
});

describe("JobLogFile", () => {
  const file = (cap: number, lineBytes = 64 * 1024) => {
    const path = join(mkdtempSync(join(tmpdir(), "gridx-joblog-")), "job.log");
    return { path, log: new JobLogFile(path, cap, new SecretMasker(["s3cret"]).stream(), silentLogger, lineBytes) };
  };

  it("keeps the output as printed, secrets masked, with no marker under the cap", async () => {
    const { path, log } = file(1000);
    log.write(Buffer.from("a\r\nthe s3cret"));
    log.write(Buffer.from(" is out\nunterminated"));
    await log.end();
    expect(readFileSync(path, "utf8")).toBe("a\r\nthe *** is out\nunterminated");
  });

  it("past the cap ends with the same marker the live log ends with", async () => {
    const output = Buffer.from(Array.from({ length: 20 }, (_, i) => `line ${i}\n`).join("") + "y".repeat(25) + "\n");
    const { path, log } = file(30, 10);
    log.write(output);
    await log.end();
    const live = new JobLog(limits({ lineBytes: 10 }), 30, () => undefined);
    live.write("stdout", output);
    live.end();
    const liveLines: string[] = [];
    for (let b = live.take(); b; b = live.take()) liveLines.push(...b.map((l) => l.text));
    const fileLines = readFileSync(path, "utf8").split("\n");
    expect(fileLines.slice(0, 4)).toEqual(["line 0", "line 1", "line 2", "line 3"]);
    expect(fileLines.at(-1)).toBe("");
    expect(fileLines.at(-2)).toBe(liveLines.at(-1));
    expect(liveLines.at(-1)).toBe("[gridx: 19 lines / 150 B dropped: log cap LOG_MAX_BYTES]");
  });
});
