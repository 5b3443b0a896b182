import { encodeEvent, SSE_HEADERS } from "./sse.ts";

/**
 * Passes a follow stream from the Durable Object that serves it to the client, asking
 * `stillAllowed` again every `recheckMs`: a follow can outlast its token or its membership,
 * and when either is gone the client gets one `error` event and the stream ends.
 */
export function relay(upstream: Response, stillAllowed: () => Promise<boolean>, recheckMs: number): Response {
  const source = upstream.body;
  if (!upstream.ok || !source) return upstream;
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const reader = source.getReader();
  let done = false;
  const stop = (last?: Uint8Array) => {
    if (done) return;
    done = true;
    clearInterval(timer);
    void reader.cancel().catch(() => undefined);
    void (last ? writer.write(last) : Promise.resolve()).then(() => writer.close()).catch(() => undefined);
  };
  const timer = setInterval(() => {
    void stillAllowed()
      .catch(() => true)
      .then((ok) => {
        if (!ok) stop(encodeEvent({ event: "error", data: JSON.stringify({ code: "unauthorized", message: "the token was revoked or no longer reads this project" }) }));
      });
  }, recheckMs);
  void (async () => {
    try {
      for (;;) {
        const { value, done: ended } = await reader.read();
        if (ended || done) break;
        await writer.write(value);
      }
    } catch {
      // The client went away (write failed) or the source broke: either way, the stream is over.
    }
    stop();
  })();
  return new Response(readable, { headers: SSE_HEADERS });
}
