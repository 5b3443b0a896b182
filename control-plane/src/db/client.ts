import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import * as schema from "./schema.ts";

// drizzle() walks the whole schema to build its relational config, which profiling showed as
// the largest single cost of a request; one instance per binding is built once per isolate.
const instances = new WeakMap<D1Database, ReturnType<typeof build>>();

const build = (d1: D1Database) => drizzle(d1, { schema });

export function createDb(d1: D1Database) {
  let db = instances.get(d1);
  if (!db) instances.set(d1, (db = build(d1)));
  return db;
}
export type Db = ReturnType<typeof createDb>;

/**
 * `column IN (the list)`, with the list bound as one JSON parameter: D1 takes at most 100 bound
 * parameters a statement, and a caller may belong to more projects than that.
 */
export const inJson = (column: SQLiteColumn, values: readonly string[]) => sql`${column} IN (SELECT value FROM json_each(${JSON.stringify(values)}))`;
