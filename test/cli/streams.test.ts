import { createServer, type Server, type ServerResponse } from "node:http";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { JobEvent } from "../../protocol/index.ts";
import { ApiClient } from "../../cli/src/api.ts";
import { CliError } from "../../cli/src/errors.ts";
import { followEvents, waitForJobEnd } from "../../cli/src/events.ts";
import { followLogs, type JobLogLine } from "../../cli/src/logs.ts";
import { runCli } from "./fake-io.ts";

/*
 * The stream clients against a real node:http server speaking server-sent events: each
 * request to a path is answered by the next scripted connection, which may drop mid-event
 * (a forced disconnect) or end with the server's `resume`.
 */
type Connection = (res: ServerResponse) => void;
let server: Server;
let base: string;
let script: Record<string, Connection[]> = {};
let json: Record<string, unknown> = {};
let requests: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const u = new URL(req.url!, "http://x");
    requests.push(`${req.method} ${u.pathname}${u.search}`);
    const key = `${req.method} ${u.pathname}`;
    const next = script[key]?.shift();
    if (next) {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.flushHeaders();
      next(res);
      return;
    }
    const body = json[key];
    res.writeHead(body === undefined ? 404 : 200, { "content-type": "application/json" });
    res.end(JSON.stringify(body ?? { error: { code: "not_found", message: `no route ${key}` } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  script = {};
  json = {};
  requests = [];
});

const sse = (event: string, data: unknown, id?: string | number) => `event: ${event}\n${id !== undefined ? `id: ${id}\n` : ""}data: ${JSON.stringify(data)}\n\n`;
const jobEvent = (id: number, status: JobEvent["status"], over: Partial<JobEvent> = {}): JobEvent => ({
  id,
  type: `job.${status}`,
  job_id: "j_1",
  project: "lab",
  pool: "default",
  status,
  attempt: status === "queued" ? 0 : 1,
  exit_code: status === "completed" ? 0 : null,
  failure_reason: null,
  at: 1000 + id,
  ...over,
});
const logLine = (seq: number, text: string): JobLogLine => ({ attempt: 1, seq, stream: "stdout", ts: 1000 + seq, text });

/** Writes the events, then drops the connection in the middle of one more. */
const thenDrop = (text: string, partial: string): Connection => (res) => {
  res.write(text + partial.slice(0, partial.length - 5));
  setImmediate(() => res.destroy());
};
/** Writes the events and a keep-alive comment, then the server's `resume` with the cursor, and closes. */
const thenResume = (text: string, after: string | null): Connection => (res) => res.end(`: keep-alive\n\n${text}${sse("resume", { after })}`);
const thenEnd = (text: string): Connection => (res) => res.end(text);

const api = () => new ApiClient(base, "gxu_test");

describe("followEvents", () => {
  it("delivers every event once, in order, across a forced disconnect and a resume", async () => {
    script["GET /v1/events"] = [
      thenDrop(sse("job", jobEvent(1, "queued"), 1) + sse("job", jobEvent(2, "assigned"), 2), sse("job", jobEvent(3, "running"), 3)),
      thenResume(sse("job", jobEvent(3, "running"), 3), "3"),
      thenEnd(sse("job", jobEvent(4, "completed"), 4)),
    ];
    const seen: number[] = [];
    const last = await followEvents(api(), { job: "j_1" }, (e) => {
      seen.push(e.id);
      return e.status === "completed" ? e : undefined;
    });
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(last).toEqual(jobEvent(4, "completed"));
    expect(requests).toEqual(["GET /v1/events?job=j_1", "GET /v1/events?job=j_1&after=2", "GET /v1/events?job=j_1&after=3"]);
  });

  it("takes the cursor a resume names, and keeps its own when the resume names none", async () => {
    script["GET /v1/events"] = [thenResume("", null), thenResume(sse("job", jobEvent(7, "queued"), 7), "9"), thenEnd(sse("job", jobEvent(10, "canceled"), 10))];
    const seen: number[] = [];
    await followEvents(api(), { project: "lab" }, (e) => (seen.push(e.id), e.status === "canceled" ? true : undefined));
    expect(seen).toEqual([7, 10]);
    expect(requests).toEqual(["GET /v1/events?project=lab", "GET /v1/events?project=lab", "GET /v1/events?project=lab&after=9"]);
  });

  it("ends on the server's error event (access lost) without reconnecting", async () => {
    script["GET /v1/events"] = [thenEnd(sse("job", jobEvent(1, "queued"), 1) + sse("error", { code: "unauthorized", message: "the token was revoked" }))];
    const run = followEvents(api(), { job: "j_1" }, () => undefined);
    await expect(run).rejects.toThrow(CliError);
    await expect(run).rejects.toMatchObject({ exitCode: 3, message: expect.stringContaining("the token was revoked") });
    expect(requests).toEqual(["GET /v1/events?job=j_1"]);
  });

  it("says how to find a job the server does not know", async () => {
    await expect(followEvents(api(), { job: "j_nope" }, () => undefined)).rejects.toMatchObject({ message: expect.stringContaining("list jobs with `gridx list`") });
  });
});

describe("waitForJobEnd", () => {
  it("asks for the job once when the stream opens without a cursor, and not again after reconnecting", async () => {
    script["GET /v1/events"] = [thenDrop(sse("job", jobEvent(2, "running"), 2), ""), thenEnd(sse("job", jobEvent(3, "failed", { failure_reason: "exit_code", exit_code: 3 }), 3))];
    let asked = 0;
    const changes: string[] = [];
    const status = await waitForJobEnd(api(), "j_1", async () => (asked++, "assigned"), { onChange: (e) => changes.push(e.type) });
    expect(status).toBe("failed");
    expect(asked).toBe(1);
    expect(changes).toEqual(["job.running", "job.failed"]);
  });

  it("ends at once for a job that ended before the stream began", async () => {
    script["GET /v1/events"] = [(res) => res.write(": keep-alive\n\n")];
    expect(await waitForJobEnd(api(), "j_1", async () => "completed")).toBe("completed");
  });
});

describe("followLogs", () => {
  it("reconnects after a resume from its cursor, at once, and sees each line once", async () => {
    const path = "GET /v1/jobs/j_1/logs";
    script[path] = [
      thenDrop(sse("log", logLine(0, "a"), "1.0"), sse("log", logLine(1, "b"), "1.1")),
      thenResume(sse("log", logLine(1, "b"), "1.1"), "1.1"),
      thenEnd(sse("log", logLine(2, "c"), "1.2") + sse("end", { status: "completed", exit_code: 0, failure_reason: null })),
    ];
    const seen: string[] = [];
    const end = await followLogs(api(), "j_1", (l) => seen.push(l.text));
    expect(seen).toEqual(["a", "b", "c"]);
    expect(end.status).toBe("completed");
    expect(requests).toEqual(["GET /v1/jobs/j_1/logs?follow=1", "GET /v1/jobs/j_1/logs?follow=1&after=1.0", "GET /v1/jobs/j_1/logs?follow=1&after=1.1"]);
  });
});

const gridx = (argv: string[]) => runCli(argv, { GRIDX_URL: base, GRIDX_TOKEN: "gxu_test", XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "gridx-cli-streams-")) });

const job = (status: string, over: Record<string, unknown> = {}) => ({ id: "j_1", status, project: "lab", pool: "default", exit_code: null, failure_reason: null, failure_message: null, ...over });

describe("run and submit --wait follow the streams, not the job", () => {
  it("submit --wait waits on the events stream and reads the job only when the stream opens and when it ended", async () => {
    json["POST /v1/jobs"] = job("queued");
    json["GET /v1/jobs/j_1"] = job("queued");
    script["GET /v1/events"] = [
      (res) => {
        // The job ends once the client has looked at it: what it read then said queued.
        json["GET /v1/jobs/j_1"] = job("failed", { exit_code: 4, failure_reason: "exit_code" });
        res.end(sse("job", jobEvent(2, "running"), 2) + sse("job", jobEvent(3, "failed", { exit_code: 4, failure_reason: "exit_code" }), 3));
      },
    ];
    const res = await gridx(["submit", "--wait", "--image", "img", "--", "false"]);
    expect(res.code).toBe(4);
    expect(res.stdout).toBe("j_1  failed (exit 4)\n");
    expect(requests).toEqual(["POST /v1/jobs", "GET /v1/events?job=j_1", "GET /v1/jobs/j_1", "GET /v1/jobs/j_1"]);
  });

  it("run prints the lines of the log stream and exits with the end event's code, reading the job only for a failure's message", async () => {
    json["POST /v1/jobs"] = job("queued");
    script["GET /v1/jobs/j_1/logs"] = [thenEnd(sse("log", logLine(0, "hi"), "1.0") + sse("end", { status: "failed", exit_code: 3, failure_reason: "exit_code" }))];
    const res = await gridx(["run", "--image", "img", "--", "sh", "-c", "echo hi; exit 3"]);
    expect(res.code).toBe(3);
    expect(res.stdout).toBe("hi\n");
    expect(res.stderr).toContain("[gridx: job j_1 failed: exit code 3]");
    expect(requests).toEqual(["POST /v1/jobs", "GET /v1/jobs/j_1/logs?follow=1"]);

    requests = [];
    json["GET /v1/jobs/j_1"] = job("failed", { failure_reason: "image_error", failure_message: "no such image" });
    script["GET /v1/jobs/j_1/logs"] = [thenEnd(sse("end", { status: "failed", exit_code: null, failure_reason: "image_error" }))];
    const failed = await gridx(["run", "--image", "img", "--", "true"]);
    expect(failed.code).toBe(125);
    expect(failed.stderr).toContain("[gridx: job j_1 failed: image_error (no such image)]");
    expect(requests).toEqual(["POST /v1/jobs", "GET /v1/jobs/j_1/logs?follow=1", "GET /v1/jobs/j_1"]);
  });
});
