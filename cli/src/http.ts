import type { IncomingMessage } from "node:http";
import { addAbortSignal, Readable } from "node:stream";
import { HeaderMap } from "./headers.ts";

/**
 * A control plane's answer as the CLI reads it: the part of the Fetch API's `Response` its
 * callers use, over node:http's message. `body` becomes a web stream only when asked for (the
 * event streams); `text` and `json` read the message directly.
 */
class NodeResponse {
  readonly status: number;
  readonly statusText: string;
  readonly ok: boolean;
  readonly headers = new HeaderMap();

  constructor(
    private readonly message: IncomingMessage,
    readonly url: string,
    signal: AbortSignal | undefined,
  ) {
    // As fetch: an abort after the answer errors its body with an AbortError (node:http's own is ECONNRESET).
    if (signal) addAbortSignal(signal, message);
    this.status = message.statusCode ?? 0;
    this.statusText = message.statusMessage ?? "";
    this.ok = this.status >= 200 && this.status < 300;
    for (let i = 0; i < message.rawHeaders.length; i += 2) this.headers.append(message.rawHeaders[i]!, message.rawHeaders[i + 1]!);
  }

  private stream: ReadableStream<Uint8Array> | undefined;

  get body(): ReadableStream<Uint8Array> {
    this.stream ??= Readable.toWeb(this.message) as ReadableStream<Uint8Array>;
    return this.stream;
  }

  async text(): Promise<string> {
    // Decoded as a stream, so a character split across chunks stays whole.
    let text = "";
    this.message.setEncoding("utf8");
    for await (const chunk of this.message as AsyncIterable<string>) text += chunk;
    return text;
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text()) as unknown;
  }
}

/** A request's headers as node:http takes them, from a `Headers` (Node's, or HeaderMap), pairs or a record. */
function headerRecord(init: HeadersInit | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!init) return out;
  for (const [name, value] of Symbol.iterator in init ? (init as Iterable<[string, string]>) : Object.entries(init)) out[name.toLowerCase()] = value;
  return out;
}

/**
 * `fetch` on node:http(s), for Hono's client and the event streams: Node's own fetch loads
 * undici the first time it is called, about 100 ms of every `gridx run`. It sends a text
 * body (hc's JSON), honours `signal` (an abort rejects with an AbortError, or errors the body
 * being read) and follows no redirect: the only API routes that redirect are the downloads,
 * which ask for the `location` (`redirect: "manual"`).
 *
 * @example
 * const res = await nodeFetch("http://127.0.0.1:8787/v1/me", { headers: { authorization: "Bearer …" } });
 * if (res.ok) console.log(await res.json());
 */
export const nodeFetch = (async (input: string | URL | Request, init: RequestInit = {}) => {
  const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
  const body = init.body ?? null;
  if (body !== null && typeof body !== "string") throw new TypeError("nodeFetch sends only text bodies");
  // Loaded at the first call, so a command that makes none (--help) pays for neither.
  const { request } = url.protocol === "https:" ? await import("node:https") : await import("node:http");
  const headers = headerRecord(init.headers);
  if (body !== null) headers["content-length"] = String(Buffer.byteLength(body));
  const message = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(url, { method: init.method ?? "GET", headers, signal: init.signal ?? undefined }, resolve);
    req.on("error", reject);
    req.end(body ?? undefined);
  });
  return new NodeResponse(message, url.href, init.signal ?? undefined);
}) as unknown as typeof fetch;
