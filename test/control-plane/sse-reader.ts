import { SELF } from "cloudflare:test";
import { ADMIN } from "./helpers.ts";

export interface Received {
  event: string;
  id?: string;
  data: string;
}

/** A follower of one of the API's event streams, read event by event. */
export class SseReader {
  private buffer = "";
  private readonly decoder = new TextDecoder();
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Comments seen (keep-alives). */
  comments = 0;

  private constructor(readonly response: Response) {
    this.reader = response.body!.getReader();
  }

  static async open(path: string, opts: { token?: string; lastEventId?: string } = {}): Promise<SseReader> {
    const headers: Record<string, string> = { authorization: `Bearer ${opts.token ?? ADMIN}` };
    if (opts.lastEventId) headers["last-event-id"] = opts.lastEventId;
    const res = await SELF.fetch(`http://gridx.test${path}`, { headers });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return new SseReader(res);
  }

  /** The next event, or null when the stream ended. */
  async next(timeoutMs = 10_000): Promise<Received | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const cut = this.buffer.indexOf("\n\n");
      if (cut >= 0) {
        const block = this.buffer.slice(0, cut);
        this.buffer = this.buffer.slice(cut + 2);
        if (block.startsWith(":")) {
          this.comments++;
          continue;
        }
        const field = (name: string) => block.split("\n").find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
        return { event: field("event") ?? "message", id: field("id"), data: field("data") ?? "" };
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("no event in time");
      const read = await Promise.race([this.reader.read(), new Promise<"timeout">((r) => setTimeout(() => r("timeout"), left))]);
      if (read === "timeout") throw new Error("no event in time");
      if (read.done) return null;
      this.buffer += this.decoder.decode(read.value, { stream: true });
    }
  }

  /** Events until one of `type` (included), or the end of the stream. */
  async until(type: string, timeoutMs = 10_000): Promise<Received[]> {
    const seen: Received[] = [];
    for (;;) {
      const e = await this.next(timeoutMs);
      if (!e) return seen;
      seen.push(e);
      if (e.event === type) return seen;
    }
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }
}
