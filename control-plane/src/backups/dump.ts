/*
 * The database as SQL, read through the D1 binding a page at a time. SQLite writes every value
 * itself (`quote()`), so text, numbers and blobs come back exactly as stored: sealed secrets and
 * token hashes are copied, never decoded.
 */

/** What a dump held, for the caller's report. */
export interface DumpStats {
  tables: number;
  rows: number;
}

interface SchemaEntry {
  type: "table" | "index" | "trigger" | "view";
  name: string;
  sql: string;
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

/**
 * Everything but SQLite's own tables and D1's internal `_cf_` ones; `d1_migrations` is kept, so
 * a restored database is as migrated as the one it came from. In creation order (rowid), so a
 * view follows the tables it reads.
 */
async function schemaOf(db: D1Database): Promise<SchemaEntry[]> {
  const { results } = await db
    .prepare(
      "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND type IN ('table', 'index', 'trigger', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY rowid",
    )
    .all<SchemaEntry>();
  return results;
}

/** The query whose rows are a table's INSERT statements, written by SQLite itself. */
async function insertQuery(db: D1Database, table: string): Promise<string> {
  const { results } = await db.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid").bind(table).all<{ name: string }>();
  const cols = results.map((c) => ident(c.name));
  const head = literal(`INSERT INTO ${ident(table)} (${cols.join(", ")}) VALUES (`);
  const values = cols.map((c) => `quote(${c})`).join(" || ', ' || ");
  return `SELECT rowid AS r, ${head} || ${values} || ');' AS s FROM ${ident(table)} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2`;
}

/**
 * The whole database as statements that `wrangler d1 execute --file` replays into an empty one:
 * tables, their rows, then indexes, triggers and views (rows go in before the indexes and no
 * trigger fires on them). At most `pageRows` rows are held at once. Rows are read page by page,
 * not in one snapshot: a row written meanwhile may or may not be in (docs/backups.md).
 *
 * @example
 * for await (const piece of dumpSql(env.DB, { pageRows: 100, at: Date.now() }, stats)) out.write(piece);
 */
export async function* dumpSql(db: D1Database, opts: { pageRows: number; at: number }, stats: DumpStats): AsyncGenerator<string> {
  const schema = await schemaOf(db);
  const tables = schema.filter((e) => e.type === "table");
  yield `-- gridx: a backup of the control plane's D1 database, taken ${new Date(opts.at).toISOString()}.\n`;
  yield "-- Restore: npm run restore FILE (docs/backups.md). Secrets are as sealed in D1; using them needs the same SECRETS_KEY.\n";
  // Lets rows go in whatever order their tables come, should a table ever gain a foreign key.
  yield "PRAGMA defer_foreign_keys = TRUE;\n";
  for (const t of tables) yield `${t.sql};\n`;
  for (const t of tables) {
    stats.tables++;
    const query = db.prepare(await insertQuery(db, t.name));
    // Rowids are positive unless a table writes its own; a key below any real one starts the walk.
    let after = Number.MIN_SAFE_INTEGER;
    for (;;) {
      const { results } = await query.bind(after, opts.pageRows).all<{ r: number; s: string }>();
      if (results.length === 0) break;
      yield results.map((row) => row.s).join("\n") + "\n";
      stats.rows += results.length;
      after = results[results.length - 1]!.r;
      if (results.length < opts.pageRows) break;
    }
  }
  for (const entry of schema.filter((e) => e.type !== "table")) yield `${entry.sql};\n`;
}
