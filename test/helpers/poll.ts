/**
 * Reads a value until a predicate holds, or throws with the last value seen. Runtime-neutral,
 * so the workerd tests and the end-to-end tests share it.
 */
export async function pollUntil<T>(read: () => Promise<T>, pred: (value: T) => boolean, opts: { timeoutMs: number; intervalMs: number; what: string }): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await read();
    if (pred(last)) return last;
    await new Promise((r) => setTimeout(r, opts.intervalMs));
  }
  throw new Error(`${opts.what} did not get there in ${opts.timeoutMs} ms; last: ${JSON.stringify(last)}`);
}
