/*
 * Which backups exist and which go: the policy both the control plane (R2) and `npm run backup`
 * (the local folder) apply, so the two keep the same days.
 */

/** Where the control plane keeps backups in R2. */
export const BACKUP_PREFIX = "backups/";

const DAILY = /^(\d{4}-\d{2}-\d{2})\.sql$/;

/** A day's backup file name, by its UTC date: `2026-12-02.sql`. */
export const backupName = (at: number): string => `${new Date(at).toISOString().slice(0, 10)}.sql`;

/** Whether a name is a daily backup's; anything else in the folder is never pruned. */
export const isBackupName = (name: string): boolean => DAILY.test(name) && !Number.isNaN(Date.parse(name.slice(0, 10)));

/**
 * The daily backups past the newest `keep`, oldest last; names that are not a day's backup are
 * left alone (an operator's own copies, a half-written download).
 *
 * @example
 * backupsToPrune(["2026-12-01.sql", "2026-12-02.sql", "notes.txt"], 1) // ["2026-12-01.sql"]
 */
export function backupsToPrune(names: readonly string[], keep: number): string[] {
  const daily = [...new Set(names.filter(isBackupName))].sort().reverse();
  return daily.slice(Math.max(0, keep));
}
