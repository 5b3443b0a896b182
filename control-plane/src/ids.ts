const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * A prefixed, time-ordered id (`j_` + 10 chars of milliseconds + 16 random), so sorting ids
 * sorts by creation time and list cursors can be plain ids.
 */
export function newId(prefix: string, now = Date.now()): string {
  let time = "";
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let rand = "";
  for (const b of bytes) rand += ALPHABET[b % 32];
  return `${prefix}_${time}${rand}`;
}
