/** One server-sent event. */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * Splits a server-sent-event stream into events, whatever the chunking: feed it text as it
 * arrives and it returns the events that are complete. Comments and fields other than
 * `event`, `data` and `id` are ignored, as the spec says.
 *
 * @example
 * const parser = new SseParser();
 * parser.push("event: log\ndata: {}\n\n"); // [{ event: "log", data: "{}" }]
 */
export class SseParser {
  private buffer = "";

  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const events: SseEvent[] = [];
    // Events end with a blank line; CRLF and CR are line ends too (a CR that ends the chunk
    // waits for the next one, which may start with its LF).
    const blocks = this.buffer.replace(/\r\n|\r(?!$)/g, "\n").split("\n\n");
    this.buffer = blocks.pop() ?? "";
    for (const block of blocks) {
      const ev: SseEvent = { event: "message", data: "" };
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") ev.event = value;
        else if (field === "data") data.push(value);
        else if (field === "id") ev.id = value;
      }
      if (!data.length) continue;
      ev.data = data.join("\n");
      events.push(ev);
    }
    return events;
  }
}
