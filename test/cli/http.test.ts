import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HeaderMap } from "../../cli/src/headers.ts";
import { nodeFetch } from "../../cli/src/http.ts";

/*
 * The CLI's fetch on node:http against a real server: each test sets the handler that
 * answers, and sees the request as the server received it.
 */
let server: Server;
let base: string;
let handle: (req: IncomingMessage, body: string, res: ServerResponse) => void = (_req, _body, res) => res.end();

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (body += c));
    req.on("end", () => handle(req, body, res));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe("nodeFetch", () => {
  it("sends the method, headers and a JSON body, and returns the status, headers and JSON answer", async () => {
    let seen: { method?: string; url?: string; headers?: IncomingMessage["headers"]; body?: string } = {};
    handle = (req, body, res) => {
      seen = { method: req.method, url: req.url, headers: req.headers, body };
      res.writeHead(201, "Made", [
        ["Content-Type", "application/json"],
        ["Set-Cookie", "a=1"],
        ["Set-Cookie", "b=2"],
      ]);
      res.end(JSON.stringify({ got: JSON.parse(body) as unknown }));
    };
    const headers = new HeaderMap({ Authorization: "Bearer tok", "Content-Type": "application/json" });
    const res = await nodeFetch(`${base}/v1/jobs?x=1`, { method: "POST", headers, body: JSON.stringify({ name: "é" }) });
    expect(seen).toMatchObject({ method: "POST", url: "/v1/jobs?x=1", body: '{"name":"é"}' });
    expect(seen.headers).toMatchObject({ authorization: "Bearer tok", "content-type": "application/json", "content-length": String(Buffer.byteLength('{"name":"é"}')) });
    expect([res.status, res.statusText, res.ok, res.url]).toEqual([201, "Made", true, `${base}/v1/jobs?x=1`]);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("SET-COOKIE")).toBe("a=1, b=2");
    expect(await res.json()).toEqual({ got: { name: "é" } });
  });

  it("takes Node's own Headers and plain records, and returns an error status as it is, with its text", async () => {
    handle = (req, _body, res) => {
      res.writeHead(404, { "content-type": "application/json", "x-seen": String(req.headers["x-a"]) });
      res.end('{"error":{"message":"no such job"}}');
    };
    for (const headers of [new Headers({ "X-A": "1" }), { "X-A": "1" }]) {
      const res = await nodeFetch(`${base}/v1/jobs/j_1`, { headers });
      expect([res.status, res.ok, res.headers.get("x-seen")]).toEqual([404, false, "1"]);
      expect(await res.text()).toBe('{"error":{"message":"no such job"}}');
    }
  });

  it("streams the body: chunks arrive as the server writes them, before it ends", async () => {
    let finish: () => void = () => undefined;
    handle = (_req, _body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("event: log\ndata: 1\n\n");
      finish = () => res.end("event: end\ndata: {}\n\n");
    };
    const res = await nodeFetch(`${base}/v1/jobs/j_1/logs?follow=1`);
    expect(res.body).toBe(res.body);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    expect(decoder.decode((await reader.read()).value)).toBe("event: log\ndata: 1\n\n");
    finish();
    expect(decoder.decode((await reader.read()).value)).toBe("event: end\ndata: {}\n\n");
    expect((await reader.read()).done).toBe(true);
  });

  it("rejects with an AbortError when aborted before the answer, and errors the body when aborted while reading it", async () => {
    const hold: ServerResponse[] = [];
    handle = (req, _body, res) => {
      hold.push(res);
      if (req.url === "/stream") {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write("data: 1\n\n");
      }
    };
    const early = new AbortController();
    const pending = nodeFetch(`${base}/slow`, { signal: early.signal });
    early.abort();
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    await expect(nodeFetch(`${base}/slow`, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: "AbortError" });

    const late = new AbortController();
    const res = await nodeFetch(`${base}/stream`, { signal: late.signal });
    const reader = res.body!.getReader();
    await reader.read();
    late.abort();
    await expect(reader.read()).rejects.toMatchObject({ name: "AbortError" });
    for (const r of hold) r.destroy();
  });

  it("fails with the socket's error when nothing listens", async () => {
    const idle = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => idle.once("listening", r));
    const { port } = idle.address() as { port: number };
    await new Promise((r) => idle.close(r));
    await expect(nodeFetch(`http://127.0.0.1:${port}/`)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});

describe("HeaderMap", () => {
  it("matches names without regard to case, joins repeated values and iterates as pairs", () => {
    const h = new HeaderMap([["A", "1"]]);
    h.append("a", "2");
    h.set("B", "3");
    expect([h.get("a"), h.has("b"), h.get("c")]).toEqual(["1, 2", true, null]);
    h.delete("A");
    expect([...h]).toEqual([["b", "3"]]);
  });
});
