/**
 * A D1 binding that counts the statements sent through it, a batch counting each of its own:
 * an array submit reports its count (`gridx-d1-statements`), so the bench can show that it stays
 * bounded however many tasks it writes.
 */
export function countingD1(d1: D1Database): { d1: D1Database; statements: () => number } {
  let n = 0;
  const inner = new WeakMap<object, D1PreparedStatement>();
  const wrap = (s: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(s, {
      get(target, key) {
        if (key === "bind") return (...values: unknown[]) => wrap(target.bind(...values));
        const value = Reflect.get(target, key) as unknown;
        if (typeof value !== "function") return value;
        if (key === "run" || key === "all" || key === "raw" || key === "first") n++;
        return (value as (...a: unknown[]) => unknown).bind(target);
      },
    });
    inner.set(proxy, s);
    return proxy;
  };
  const counted = new Proxy(d1, {
    get(target, key) {
      if (key === "prepare") return (sql: string) => wrap(target.prepare(sql));
      if (key === "batch") {
        return (statements: D1PreparedStatement[]) => {
          n += statements.length;
          return target.batch(statements.map((s) => inner.get(s) ?? s));
        };
      }
      const value = Reflect.get(target, key) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { d1: counted, statements: () => n };
}
