import { describe, expect, it } from "vitest";
import { SseParser } from "../../cli/src/sse.ts";

const STREAM = 'event: log\nid: 1.0\ndata: {"text":"a"}\n\n: a comment\nevent: log\nid: 1.1\ndata: {"text":"b"}\n\nevent: end\ndata: {"status":"completed"}\n\n';

describe("SseParser", () => {
  it("parses whole events", () => {
    expect(new SseParser().push(STREAM)).toEqual([
      { event: "log", id: "1.0", data: '{"text":"a"}' },
      { event: "log", id: "1.1", data: '{"text":"b"}' },
      { event: "end", data: '{"status":"completed"}' },
    ]);
  });

  it("gives the same events however the stream is cut", () => {
    const whole = new SseParser().push(STREAM);
    for (const size of [1, 2, 3, 7, 13]) {
      const parser = new SseParser();
      const events = [];
      for (let i = 0; i < STREAM.length; i += size) events.push(...parser.push(STREAM.slice(i, i + size)));
      expect(events).toEqual(whole);
    }
  });

  it("takes CRLF line ends, even split between chunks, and joins data lines", () => {
    const parser = new SseParser();
    expect(parser.push("event: log\r\ndata: one\r")).toEqual([]);
    expect(parser.push("\ndata: two\r\n\r\n")).toEqual([{ event: "log", data: "one\ntwo" }]);
  });

  it("keeps an unfinished event until its blank line, and skips events without data", () => {
    const parser = new SseParser();
    expect(parser.push("event: ping\n\nevent: log\ndata: x")).toEqual([]);
    expect(parser.push("\n\n")).toEqual([{ event: "log", data: "x" }]);
  });
});
