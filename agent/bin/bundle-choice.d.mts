/** An installed bundle. */
export interface Bundle {
  version: string;
  path: string;
  /** The shipped (package or image) version its trial ran over; another one shipped since replaces it. */
  over?: string | null;
}
/** A bundle installed by an upgrade, not yet confirmed by a hello accepted; `started_at` set once its trial began. */
export interface PendingBundle extends Bundle {
  confirm_s: number;
  started_at: number | null;
}
export interface Rollback {
  version: string;
  reason: string;
  at: number;
  /** Told to the control plane (upgrade_status) after a hello. */
  reported: boolean;
}
/** <state dir>/bundles/state.json. `current` null: the bundle the launcher ships with. */
export interface BundleState {
  current: Bundle | null;
  previous: Bundle | null;
  pending: PendingBundle | null;
  rolled_back: Rollback | null;
}
export declare const RESTART_EXIT: number;
export declare const EMPTY_STATE: BundleState;
export declare function stateFile(stateDir: string): string;
export declare function bundlePath(stateDir: string, version: string): string;
export declare function stateDirOf(argv: string[], env: Record<string, string | undefined>, readConfig: (file: string) => { stateDir?: unknown } | null): string;
export declare function runsAgent(argv: string[]): boolean;
export declare function atStart(state: BundleState | null, now: number, shipped?: string): { path: string | null; trial: PendingBundle | null; state: BundleState };
export declare function trialEnded(state: BundleState | null, version: string, why: string, now: number): BundleState | null;
export declare function installed(state: BundleState | null, version: string, path: string, confirmS: number): BundleState;
export declare function confirmed(state: BundleState | null, version: string): BundleState | null;
export declare function unreportedRollback(state: BundleState | null): { rollback: Rollback; state: BundleState } | null;
