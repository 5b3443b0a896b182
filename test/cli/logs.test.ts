import { describe, expect, it } from "vitest";
import { ApiClient } from "../../cli/src/api.ts";
import { followLogs, LogPrinter, readLogs, type JobLogLine } from "../../cli/src/logs.ts";

const line = (seq: number, stream: JobLogLine["stream"], text: string, attempt = 1): JobLogLine => ({ attempt, seq, stream, ts: 1000 + seq, text });

function sink() {
  const out = { stdout: "", stderr: "" };
  return { out, io: { stdout: { write: (t: string) => (out.stdout += t) }, stderr: { write: (t: string) => (out.stderr += t) } } };
}

const sse = (events: { event: string; id?: string; data: unknown }[]) =>
  events.map((e) => `event: ${e.event}\n${e.id ? `id: ${e.id}\n` : ""}data: ${JSON.stringify(e.data)}\n\n`).join("");

/** A fetch that answers each request with the next canned body, recording the URLs. */
function scripted(bodies: (string | Error)[]) {
  const urls: string[] = [];
  const fake = (async (input: RequestInfo | URL, init?: RequestInit) => {
    urls.push(new Request(input, init).url);
    const next = bodies.shift();
    if (next === undefined) throw new Error("no more answers");
    if (next instanceof Error) throw next;
    return new Response(next, { status: 200, headers: { "content-type": next.startsWith("{") ? "application/json" : "text/event-stream" } });
  }) as typeof fetch;
  return { api: new ApiClient("http://cp.test", "tok", fake), urls };
}

describe("LogPrinter", () => {
  it("puts stdout on stdout, stderr and gridx's lines on stderr, and marks a new attempt", () => {
    const { out, io } = sink();
    const p = new LogPrinter(io);
    [line(0, "stdout", "a"), line(1, "stderr", "b"), line(2, "system", "[gridx: x]"), line(0, "stdout", "again", 2)].forEach((l) => p.line(l));
    expect(out.stdout).toBe("a\nagain\n");
    expect(out.stderr).toBe("b\n[gridx: x]\n[gridx: attempt 2]\n");
  });

  it("leaves out gridx's lines when quiet, and writes JSON lines with json", () => {
    const quiet = sink();
    const q = new LogPrinter(quiet.io, { quiet: true });
    [line(0, "system", "[gridx: x]"), line(1, "stderr", "b")].forEach((l) => q.line(l));
    expect(quiet.out.stderr).toBe("b\n");
    const json = sink();
    new LogPrinter(json.io, { json: true }).line(line(0, "stderr", "b"));
    expect(JSON.parse(json.out.stdout)).toEqual({ type: "log", ...line(0, "stderr", "b") });
    expect(json.out.stderr).toBe("");
  });
});

describe("readLogs", () => {
  it("pages through the log until a page is empty", async () => {
    const { api, urls } = scripted([
      JSON.stringify({ lines: [line(0, "stdout", "a")], next_cursor: "1.0", status: "running" }),
      JSON.stringify({ lines: [line(1, "stdout", "b")], next_cursor: "1.1", status: "running" }),
      JSON.stringify({ lines: [], next_cursor: "1.1", status: "completed" }),
    ]);
    const seen: string[] = [];
    expect(await readLogs(api, "j_1", (l) => seen.push(l.text))).toBe("completed");
    expect(seen).toEqual(["a", "b"]);
    expect(urls).toEqual(["http://cp.test/v1/jobs/j_1/logs", "http://cp.test/v1/jobs/j_1/logs?after=1.0", "http://cp.test/v1/jobs/j_1/logs?after=1.1"]);
  });
});

describe("followLogs", () => {
  it("calls back for each line and resolves with the end event", async () => {
    const { api, urls } = scripted([
      sse([
        { event: "log", id: "1.0", data: line(0, "stdout", "a") },
        { event: "log", id: "1.1", data: line(1, "stderr", "b") },
        { event: "end", data: { status: "failed", exit_code: 3, failure_reason: "exit_code" } },
      ]),
    ]);
    const seen: string[] = [];
    const end = await followLogs(api, "j_1", (l) => seen.push(l.text));
    expect(seen).toEqual(["a", "b"]);
    expect(end).toEqual({ status: "failed", exit_code: 3, failure_reason: "exit_code" });
    expect(urls).toEqual(["http://cp.test/v1/jobs/j_1/logs?follow=1"]);
  });

  it("picks a dropped stream up after the last line it saw, without repeating lines", async () => {
    const { api, urls } = scripted([
      sse([{ event: "log", id: "1.0", data: line(0, "stdout", "a") }]),
      new TypeError("fetch failed"),
      sse([
        { event: "log", id: "1.1", data: line(1, "stdout", "b") },
        { event: "end", data: { status: "completed", exit_code: 0, failure_reason: null } },
      ]),
    ]);
    const seen: string[] = [];
    const end = await followLogs(api, "j_1", (l) => seen.push(l.text));
    expect(seen).toEqual(["a", "b"]);
    expect(end.status).toBe("completed");
    expect(urls).toEqual(["http://cp.test/v1/jobs/j_1/logs?follow=1", "http://cp.test/v1/jobs/j_1/logs?follow=1&after=1.0", "http://cp.test/v1/jobs/j_1/logs?follow=1&after=1.0"]);
  });
});
