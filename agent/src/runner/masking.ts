import type { RunHooks } from "./runner.ts";

/** What a secret's value reads as in anything the agent sends back. */
export const MASK = "***";

/**
 * A secret line shorter than this many characters is not masked: masking `1` or `yes`
 * would garble every line of output while hiding nothing worth guessing.
 */
export const MIN_MASKED_CHARS = 4;

/** A half-open byte range [start, end). */
type Range = [number, number];

/**
 * Replaces every secret value in a job's output with `***`, as GitHub Actions does with its
 * secrets. A multi-line value is masked line by line (each of its lines is a value of its own),
 * so a private key printed whole or in part reads as `***` lines. Values that overlap in the
 * output are masked together. Only the bytes as given are matched: a value printed encoded
 * (base64, URL-escaped, reversed) is not recognised.
 */
export class SecretMasker {
  private readonly values: Buffer[];

  constructor(secrets: Iterable<string | undefined>) {
    const lines = new Set<string>();
    for (const secret of secrets) {
      for (const line of (secret ?? "").split(/\r?\n/)) if ([...line].length >= MIN_MASKED_CHARS) lines.add(line);
    }
    this.values = [...lines].map((l) => Buffer.from(l, "utf8"));
  }

  get empty(): boolean {
    return this.values.length === 0;
  }

  /** `text` with every value masked. */
  text(text: string): string {
    if (this.empty) return text;
    const data = Buffer.from(text, "utf8");
    return render(data, merged(this.occurrences(data)), data.length, null).toString("utf8");
  }

  /** A masker for one byte stream, whose chunks may cut a value anywhere. */
  stream(): StreamMasker {
    return new StreamMasker(this);
  }

  /** Where any value occurs in `data`, unmerged. */
  occurrences(data: Buffer): Range[] {
    const found: Range[] = [];
    for (const v of this.values) {
      for (let at = data.indexOf(v); at !== -1; at = data.indexOf(v, at + 1)) found.push([at, at + v.length]);
    }
    return found;
  }

  /** Bytes at the end of `data` that begin some value, and so may be its first part: the longest such run. */
  openTail(data: Buffer): number {
    let longest = 0;
    for (const v of this.values) {
      // Only positions holding the value's first byte can start it.
      for (let at = data.lastIndexOf(v[0]!, data.length - 1); at !== -1 && data.length - at < v.length; at = at > 0 ? data.lastIndexOf(v[0]!, at - 1) : -1) {
        const tail = data.length - at;
        if (tail > longest && data.subarray(at).equals(v.subarray(0, tail))) longest = tail;
      }
    }
    return longest;
  }
}

/**
 * Masks one stream as it comes: a value cut across two chunks is still masked. It holds back
 * only the bytes at a chunk's end that could begin a value, so output that cannot hide a
 * value is passed on at once; `end` gives what is held.
 */
export class StreamMasker {
  /** Bytes held back: not passed on yet. */
  private carry: Buffer = Buffer.alloc(0);
  /**
   * Null unless what was passed on ends in `***`; then how many leading bytes of `carry` that
   * `***` stands for (0: it ends just before them), so a value there joins it and never shows.
   */
  private maskedTo: number | null = null;

  constructor(private readonly masker: SecretMasker) {}

  write(chunk: Buffer): Buffer {
    if (this.masker.empty) return chunk;
    const data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const ranges = this.ranges(data);
    // A value that starts before the cut is whole in `data` (else its start would be in the open tail), so it was found.
    const cut = data.length - this.masker.openTail(data);
    const out = render(data, ranges, cut, this.maskedTo);
    // The range whose `***` went out (now, or before) and reaches the cut: the held bytes it covers never show.
    const shown = ranges.find(([s, e]) => e >= cut && (s < cut || (this.maskedTo !== null && s <= this.maskedTo)));
    this.maskedTo = shown ? shown[1] - cut : cut === 0 ? this.maskedTo : null;
    this.carry = Buffer.from(data.subarray(cut));
    return out;
  }

  /** The held-back bytes, masked: the stream ended. */
  end(): Buffer {
    const data = this.carry;
    const out = render(data, this.ranges(data), data.length, this.maskedTo);
    this.carry = Buffer.alloc(0);
    this.maskedTo = null;
    return out;
  }

  private ranges(data: Buffer): Range[] {
    const found = this.masker.occurrences(data);
    if (this.maskedTo) found.push([0, this.maskedTo]);
    return merged(found);
  }
}

/** Overlapping or touching ranges joined, in order. */
function merged(ranges: Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Range[] = [];
  for (const [s, e] of sorted) {
    const last = out.at(-1);
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/**
 * The first `to` bytes of `data` with each range shown as `***`. A range that begins by
 * `maskedTo` (see StreamMasker) continues the `***` already passed on, so it adds nothing.
 */
function render(data: Buffer, ranges: Range[], to: number, maskedTo: number | null): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const [s, e] of ranges) {
    if (s >= to) break;
    if (s > at) parts.push(data.subarray(at, s));
    if (maskedTo === null || s > maskedTo) parts.push(Buffer.from(MASK));
    at = Math.min(e, to);
  }
  if (at < to) parts.push(data.subarray(at, to));
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** Per stream masking in front of a run's hooks; `end` passes on what each stream held back. */
export interface MaskedHooks extends RunHooks {
  end(): void;
}

/** `hooks` with every secret value masked in what a run says and its output. */
export function maskedHooks(hooks: RunHooks, masker: SecretMasker): MaskedHooks {
  const streams = new Map<Parameters<RunHooks["output"]>[0], StreamMasker>();
  return {
    started: hooks.started,
    congested: hooks.congested,
    system: (text) => hooks.system(masker.text(text)),
    output(stream, chunk) {
      let m = streams.get(stream);
      if (!m) streams.set(stream, (m = masker.stream()));
      const out = m.write(chunk);
      if (out.length) hooks.output(stream, out);
    },
    end() {
      for (const [stream, m] of streams) {
        const out = m.end();
        if (out.length) hooks.output(stream, out);
      }
    },
  };
}
