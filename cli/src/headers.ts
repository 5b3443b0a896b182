/**
 * The part of the Fetch API's `Headers` that the CLI's calls use, with the same case-blind
 * names. scripts/build-cli.ts injects it into the bundle in place of the global: Node's own
 * `Headers` loads undici (about 60 ms of a start) the first time it is touched, and Hono's
 * client builds one for every call.
 *
 * @example
 * const h = new HeaderMap({ "Content-Type": "application/json" });
 * h.get("content-type"); // "application/json"
 */
export class HeaderMap {
  private readonly map = new Map<string, string>();

  constructor(init?: Iterable<readonly [string, string]> | Record<string, string>) {
    if (!init) return;
    for (const [name, value] of Symbol.iterator in init ? init : Object.entries(init)) this.append(name, value);
  }

  get(name: string): string | null {
    return this.map.get(name.toLowerCase()) ?? null;
  }

  has(name: string): boolean {
    return this.map.has(name.toLowerCase());
  }

  set(name: string, value: string): void {
    this.map.set(name.toLowerCase(), String(value));
  }

  /** A repeated header joins its values with `, `, as fetch does. */
  append(name: string, value: string): void {
    const had = this.get(name);
    this.set(name, had === null ? value : `${had}, ${value}`);
  }

  delete(name: string): void {
    this.map.delete(name.toLowerCase());
  }

  forEach(fn: (value: string, name: string) => void): void {
    for (const [name, value] of this.map) fn(value, name);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.map.entries();
  }
}

// The name esbuild's `inject` replaces the global with.
export { HeaderMap as Headers };
