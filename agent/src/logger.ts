/** A structured (JSON lines) logger; `child()` adds fields such as a job id to every line. */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(base: Record<string, unknown> = {}, write: (line: string) => void = (l) => process.stderr.write(l + "\n")): Logger {
  const emit = (level: string, msg: string, fields?: Record<string, unknown>) => {
    const extra = fields ? Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v instanceof Error ? v.message : v])) : {};
    write(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...base, ...extra }));
  };
  return {
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger({ ...base, ...fields }, write),
  };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {}, child: () => silentLogger };
