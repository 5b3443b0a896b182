import { CliError, NetworkError } from "./errors.ts";
import { EXIT } from "./exit-codes.ts";
import { SseParser, type SseEvent } from "./sse.ts";

/** Reconnects in a row, with no event between them, before a broken stream is an error. */
const MAX_RECONNECTS = 5;

/** One stream a follower reads: how to open it after a cursor, and what its events mean. */
export interface FollowedStream<T> {
  /** Opens the stream after `after` (an event id; undefined: as the server starts it). */
  open(after: string | undefined, signal?: AbortSignal): Promise<{ body: ReadableStream<Uint8Array> | null }>;
  /** Called when a stream opened without a cursor, before its events: a value ends the follow (what happened before the stream may not be in it). */
  opened?(): Promise<{ done: T } | undefined>;
  /** Each event other than `resume` and `error`; a value ends the follow with it. Its id becomes the cursor after it returns. */
  onEvent(ev: SseEvent): { done: T } | undefined;
  /** The stream in the user's words (`the log stream of j_1`), and how to pick it up again when it is lost for good. */
  what: string;
  again: string;
}

/**
 * Reads a gridx event stream (server-sent events) until `onEvent` ends it, reconnecting after
 * the last id seen, so every event arrives exactly once: after a dropped connection (with a
 * growing pause, up to MAX_RECONNECTS in a row), and at once after the server's `resume`
 * event, which it sends when a stream reaches its maximum duration (data: `{after}`, the cursor
 * to reconnect from). An `error` event (the token lost its access) ends the follow; so does an
 * answer other than a stream (404, 401, ...).
 *
 * @example
 * const end = await followStream({ open: (after) => fetchStream(after), onEvent: (ev) => (ev.event === "end" ? { done: ev.data } : undefined), what: "the stream", again: "try again" });
 */
export async function followStream<T>(stream: FollowedStream<T>, opts: { signal?: AbortSignal; after?: string } = {}): Promise<T> {
  let after = opts.after;
  let failures = 0;
  for (;;) {
    try {
      const res = await stream.open(after, opts.signal);
      if (!res.body) throw new Error("the stream has no body");
      const reader = res.body.getReader();
      const end = await (async (): Promise<{ done: T } | "resume" | undefined> => {
        if (after === undefined && stream.opened) {
          const before = await stream.opened();
          if (before) return before;
        }
        const decoder = new TextDecoder();
        const parser = new SseParser();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return undefined;
          for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
            failures = 0;
            if (ev.event === "resume") {
              after = (JSON.parse(ev.data) as { after: string | null }).after ?? after;
              return "resume";
            }
            if (ev.event === "error") {
              const { message } = JSON.parse(ev.data) as { message?: string };
              throw new CliError(`the server ended the stream: ${message ?? ev.data}`, EXIT.auth);
            }
            const out = stream.onEvent(ev);
            if (ev.id) after = ev.id;
            if (out) return out;
          }
        }
      })().finally(() => reader.cancel().catch(() => undefined));
      if (end === "resume") continue;
      if (end) return end.done;
      throw new Error("the stream ended before it said it was done");
    } catch (err) {
      // An answer from the server (404, 401, an error event) is final; a lost connection is tried again.
      if ((err instanceof CliError && !(err instanceof NetworkError)) || opts.signal?.aborted) throw err;
      if (++failures > MAX_RECONNECTS) throw new CliError(`lost ${stream.what} (${(err as Error).message}); ${stream.again}`);
      await new Promise((r) => setTimeout(r, 500 * failures));
    }
  }
}
