// Which agent bundle the launcher runs, and every change to the record of installed bundles
// (<state dir>/bundles/state.json). Plain JavaScript without dependencies: the launcher loads
// it before any bundle, and the agent (bundled) writes the same record through it.
// Types: bundle-choice.d.mts. Decisions only; the launcher and the agent do the reading and writing.

/** The exit status after which the service manager starts the agent again, into the bundle the record names. */
export const RESTART_EXIT = 75;

/** @type {import("./bundle-choice.d.mts").BundleState} */
export const EMPTY_STATE = { current: null, previous: null, pending: null, rolled_back: null };

/** The record's path in a state dir. */
export const stateFile = (stateDir) => `${stateDir.replace(/\/+$/, "")}/bundles/state.json`;

/** Where an installed version's bundle lives in a state dir. */
export const bundlePath = (stateDir, version) => `${stateDir.replace(/\/+$/, "")}/bundles/${version}/gridx-agent.mjs`;

/**
 * The agent's state dir as its config resolves it (flag over GRIDX_STATE_DIR over the config
 * file's `stateDir`), for the launcher, which runs before the config is parsed.
 */
export function stateDirOf(argv, env, readConfig) {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--state-dir" && argv[i + 1]) return argv[i + 1];
    if (argv[i].startsWith("--state-dir=")) return argv[i].slice("--state-dir=".length);
  }
  if (env.GRIDX_STATE_DIR) return env.GRIDX_STATE_DIR;
  const configIndex = argv.indexOf("--config");
  const file = (configIndex >= 0 ? argv[configIndex + 1] : undefined) ?? env.GRIDX_CONFIG ?? "/etc/gridx/agent.json";
  const fromFile = readConfig(file)?.stateDir;
  return typeof fromFile === "string" && fromFile ? fromFile : "/var/lib/gridx";
}

/** Whether argv runs the agent (not install, uninstall, status or help, which never try a bundle on trial). */
export const runsAgent = (argv) => !["install", "uninstall", "status", "help", "--help"].includes(argv[0] ?? "");

const rollBack = (state, reason, now) => ({ ...state, pending: null, rolled_back: { version: state.pending.version, reason, at: now, reported: false } });

/**
 * What the launcher runs (`path` null: the bundle it ships with, of version `shipped`) and the
 * record it writes first. A pending bundle is tried once: marked started, it runs on trial
 * (`trial`). Found still pending and started, its run ended without a hello accepted and without
 * the launcher seeing it end (killed, the machine lost power): it is rolled back, and the current
 * one runs. A trial records the shipped version it ran over (`over`); a current bundle installed
 * over another shipped version than this one is dropped: the operator installed another package
 * or image since the upgrade, and that install is what they mean to run.
 */
export function atStart(state, now, shipped) {
  const given = state ?? EMPTY_STATE;
  const replaced = !given.pending && given.current?.over && shipped && given.current.over !== shipped;
  const s = replaced ? { ...given, current: null } : given;
  if (s.pending && s.pending.started_at === null) {
    const pending = { ...s.pending, started_at: now, over: shipped ?? null };
    return { path: pending.path, trial: pending, state: { ...s, pending } };
  }
  const next = s.pending ? rollBack(s, `the new agent ${s.pending.version} stopped before its hello was accepted`, now) : s;
  return { path: next.current?.path ?? null, trial: null, state: next };
}

/**
 * The trial of `version` ended (`why`: it exited with a status, or did not connect in time):
 * if it is still pending, it is rolled back and the launcher exits RESTART_EXIT so its service
 * manager starts the current bundle. Null: nothing to do (it was confirmed, or is not on trial).
 */
export function trialEnded(state, version, why, now) {
  if (!state?.pending || state.pending.version !== version) return null;
  return rollBack(state, why, now);
}

/** The agent installed `version` at `path`: it runs on trial at the next start, for at most `confirmS` seconds before its hello is accepted. */
export function installed(state, version, path, confirmS) {
  return { ...(state ?? EMPTY_STATE), pending: { version, path, confirm_s: confirmS, started_at: null } };
}

/**
 * The agent running `version` had its hello accepted: a pending bundle of that version becomes
 * the current one and the current the previous (kept on disk, the others may go). Null: nothing changes.
 */
export function confirmed(state, version) {
  if (!state?.pending || state.pending.version !== version) return null;
  const { version: v, path, over = null } = state.pending;
  return { ...state, previous: state.current, current: { version: v, path, over }, pending: null };
}

/** The rollback not yet told to the control plane, if any, and the record once it is. */
export function unreportedRollback(state) {
  if (!state?.rolled_back || state.rolled_back.reported) return null;
  return { rollback: state.rolled_back, state: { ...state, rolled_back: { ...state.rolled_back, reported: true } } };
}
