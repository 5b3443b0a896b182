import { createReadStream } from "node:fs";
import type { Agent as HttpAgent, IncomingMessage } from "node:http";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { backoffDelay } from "../backoff.ts";

export interface HttpOptions {
  /** A proxy tunnel (see network.ts), when one applies to this URL. */
  agent?: (url: string) => HttpAgent | undefined;
  ca?: string[];
  /** Cancels the request and its response, e.g. the other parts of a download that failed. */
  signal?: AbortSignal;
}

export type Body = { file: string; start: number; end: number } | string | null;

/**
 * One HTTP request with node:http(s), so presigned transfers go through the same proxy and
 * CA settings as the WebSocket. A file range is streamed, never read into memory.
 */
export function send(url: string, method: string, body: Body, headers: Record<string, string>, opts: HttpOptions): Promise<IncomingMessage> {
  const u = new URL(url);
  const request = u.protocol === "https:" ? httpsRequest : httpRequest;
  const length = body === null ? 0 : typeof body === "string" ? Buffer.byteLength(body) : body.end - body.start;
  return new Promise((resolve, reject) => {
    const req = request(u, { method, headers: { ...headers, "content-length": String(length) }, agent: opts.agent?.(url), ca: opts.ca, signal: opts.signal }, resolve);
    req.on("error", reject);
    if (body === null) req.end();
    else if (typeof body === "string") req.end(body);
    else if (length === 0) req.end();
    else {
      const stream: Readable = createReadStream(body.file, { start: body.start, end: body.end - 1 });
      stream.on("error", (err) => req.destroy(err));
      stream.pipe(req);
    }
  });
}

/** A response body as text; decoded as a stream, so a character split across chunks stays whole. */
export async function readBody(res: IncomingMessage): Promise<string> {
  let text = "";
  res.setEncoding("utf8");
  for await (const chunk of res as AsyncIterable<string>) text += chunk;
  return text;
}

export async function expectOk(res: IncomingMessage, what: string): Promise<IncomingMessage> {
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return res;
  const body = (await readBody(res)).slice(0, 500);
  const message = `${what}: HTTP ${status} ${body}`;
  throw status >= 500 || status === 429 ? new RetryableError(message) : new Error(message);
}

const NETWORK_ERRORS = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ECONNABORTED"]);

/** An HTTP failure worth retrying: the network, or the server's own trouble (5xx, 429). */
export class RetryableError extends Error {}

/**
 * Runs an idempotent transfer step, retrying network errors and retryable statuses with
 * backoff (full jitter) until `deadlineMs` passes, so a control-plane restart or a blip in
 * the network does not lose a job's outputs. An aborted `signal` ends the retrying at once.
 */
export async function withRetry<T>(fn: () => Promise<T>, opts: { deadlineMs: number; baseMs?: number; maxMs?: number; signal?: AbortSignal }): Promise<T> {
  const deadline = Date.now() + opts.deadlineMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const retryable = err instanceof RetryableError || NETWORK_ERRORS.has((err as NodeJS.ErrnoException).code ?? "");
      const delay = backoffDelay(attempt, { baseMs: opts.baseMs ?? 500, maxMs: opts.maxMs ?? 10_000 });
      if (!retryable || opts.signal?.aborted || Date.now() + delay > deadline) throw err;
      await sleep(delay, undefined, { signal: opts.signal });
    }
  }
}
