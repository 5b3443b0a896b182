/**
 * What the control plane says about an agent's version (pure). Below `minimum` an agent is
 * refused at hello with the close code after which it stops (CloseCode.outdated) and a message
 * naming what to install, so it does not redial in a loop; below `recommended` it runs and is
 * shown `outdated` (GET /v1/workers, `gridx workers --outdated`). A version that is not
 * `MAJOR.MINOR.PATCH` (a development build) is never refused.
 */
export type VersionVerdict = { kind: "current" } | { kind: "outdated"; recommended: string } | { kind: "refused"; minimum: string; message: string };

const SEMVER = /^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/;

/** -1, 0 or 1 as `a` is older, the same or newer than `b`; null when either is not a version. */
export function compareVersions(a: string, b: string): number | null {
  const x = SEMVER.exec(a);
  const y = SEMVER.exec(b);
  if (!x || !y) return null;
  for (let i = 1; i <= 3; i++) {
    const d = Number(x[i]) - Number(y[i]);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

export function agentVersionVerdict(version: string, bounds: { minimum: string; recommended: string }): VersionVerdict {
  if (bounds.minimum && (compareVersions(version, bounds.minimum) ?? 0) < 0) {
    const target = bounds.recommended || bounds.minimum;
    return {
      kind: "refused",
      minimum: bounds.minimum,
      message: `gridx agent ${version} is older than this control plane's minimum ${bounds.minimum}: install ${target} (npm install -g gridx@${target}, then restart the service)`,
    };
  }
  if (bounds.recommended && (compareVersions(version, bounds.recommended) ?? 0) < 0) return { kind: "outdated", recommended: bounds.recommended };
  return { kind: "current" };
}
