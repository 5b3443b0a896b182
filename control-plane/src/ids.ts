const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const RANDOM_CHARS = 16;

// Per isolate: the last id's time and random digits, so ids made in the same millisecond (or
// after the clock stepped back) still sort in the order they were made. workerd freezes
// Date.now() during a request, so a batch of submits in one request shares one millisecond.
let lastTime = -1;
let lastRandom: number[] = [];

/**
 * A prefixed, time-ordered id (`j_` + 10 chars of milliseconds + 16 random), so sorting ids
 * sorts by creation time and list cursors can be plain ids. Within an isolate the ids are
 * strictly increasing (a monotonic ULID): a second id in the same millisecond is the previous
 * random tail plus one.
 */
export function newId(prefix: string, now = Date.now()): string {
  let random: number[];
  let time = now;
  if (now <= lastTime && increment(lastRandom)) {
    time = lastTime;
    random = lastRandom;
  } else {
    random = Array.from(crypto.getRandomValues(new Uint8Array(RANDOM_CHARS)), (b) => b % 32);
    // Leave headroom so the increments that follow in this millisecond do not overflow.
    random[0] = random[0]! % 16;
  }
  lastTime = time;
  lastRandom = random;
  return `${prefix}_${encodeTime(time)}${random.map((d) => ALPHABET[d]).join("")}`;
}

/** The smallest id of the millisecond `ms`, whatever ids were made since: `id < firstIdAt(prefix, t)` means "made before t". */
export const firstIdAt = (prefix: string, ms: number) => `${prefix}_${encodeTime(ms)}${ALPHABET[0]!.repeat(RANDOM_CHARS)}`;

function encodeTime(ms: number): string {
  let out = "";
  let t = ms;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out;
}

/** Adds one to base-32 digits in place; false when they were all at the maximum. */
function increment(digits: number[]): boolean {
  for (let i = digits.length - 1; i >= 0; i--) {
    if (digits[i]! < 31) {
      digits[i]!++;
      return true;
    }
    digits[i] = 0;
  }
  return false;
}
