import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { expectOk, RetryableError, send, withRetry } from "../../agent/src/transfer/http.ts";
import { freePort } from "../../scripts/local-grid.ts";

describe("withRetry", () => {
  it("retries network errors and server trouble, not a refusal", async () => {
    let calls = 0;
    const flaky = await withRetry(
      async () => {
        calls++;
        if (calls === 1) throw Object.assign(new Error("refused"), { code: "ECONNREFUSED" });
        if (calls === 2) throw new RetryableError("HTTP 503");
        return "ok";
      },
      { deadlineMs: 5000, baseMs: 1, maxMs: 5 },
    );
    expect([flaky, calls]).toEqual(["ok", 3]);
    let denied = 0;
    await expect(withRetry(async () => (denied++, Promise.reject(new Error("HTTP 403"))), { deadlineMs: 5000, baseMs: 1 })).rejects.toThrow("HTTP 403");
    expect(denied).toBe(1);
  });

  it("gives up at its deadline", async () => {
    await expect(withRetry(() => Promise.reject(new RetryableError("still down")), { deadlineMs: 50, baseMs: 20, maxMs: 20 })).rejects.toThrow("still down");
  });

  it("stops retrying once its signal is aborted", async () => {
    // Left alone, this would retry for a minute.
    const abort = new AbortController();
    const started = Date.now();
    const run = withRetry(() => Promise.reject(new RetryableError("HTTP 503")), { deadlineMs: 60_000, baseMs: 10_000, maxMs: 10_000, signal: abort.signal });
    setTimeout(() => abort.abort(new Error("another part failed")), 50);
    await expect(run).rejects.toThrow(/abort|HTTP 503/i);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("rides out a server that starts late", async () => {
    const port = await freePort();
    const server = createServer((_req, res) => res.end("up"));
    setTimeout(() => server.listen(port, "127.0.0.1"), 300);
    const body = await withRetry(async () => {
      const res = await expectOk(await send(`http://127.0.0.1:${port}/`, "GET", null, {}, {}), "probe");
      let text = "";
      for await (const c of res) text += String(c);
      return text;
    }, { deadlineMs: 10_000, baseMs: 50, maxMs: 200 });
    expect(body).toBe("up");
    server.close();
  });

  it("classes 5xx as retryable and 4xx as final", async () => {
    const server = createServer((req, res) => res.writeHead(req.url === "/busy" ? 503 : 404).end("no"));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await expect(expectOk(await send(`${base}/busy`, "GET", null, {}, {}), "x")).rejects.toBeInstanceOf(RetryableError);
    const final = await expectOk(await send(`${base}/gone`, "GET", null, {}, {}), "x").catch((e: unknown) => e);
    expect(final).toBeInstanceOf(Error);
    expect(final).not.toBeInstanceOf(RetryableError);
    server.close();
  });
});
