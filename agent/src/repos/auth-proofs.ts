import { createHash } from "node:crypto";

/**
 * Which credentials the origin has lately let read a repository, so that a commit already in
 * the shared mirror goes only to jobs the origin would let in. A proof is kept per
 * (URL, sha256 of the credential, or "none") for `ttlMs`; an anonymous proof means the
 * repository is public, and serves every job. Refusals are not kept: a refused job always
 * asks the origin again, so access granted a moment later works at once.
 *
 * @example
 * const proofs = new AuthProofs(300_000);
 * if (!proofs.admits(url, token)) { await lsRemote(url, token); proofs.prove(url, token); }
 */
export class AuthProofs {
  /** Key to the time (ms) its proof runs out. */
  private readonly until = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether a job holding `credential` (or none) may take a cached commit of `url` without asking the origin. */
  admits(url: string, credential: string | undefined): boolean {
    const now = this.now();
    return [undefined, credential].some((c) => (this.until.get(key(url, c)) ?? 0) > now);
  }

  /** The origin just let `credential` (or no credential) read `url`: a fetch or ls-remote with it succeeded. */
  prove(url: string, credential: string | undefined): void {
    const now = this.now();
    for (const [k, until] of this.until) if (until <= now) this.until.delete(k);
    if (this.ttlMs > 0) this.until.set(key(url, credential), now + this.ttlMs);
  }

  /** The origin just refused `credential` for `url`: a revoked credential loses its proof at once. */
  refuse(url: string, credential: string | undefined): void {
    this.until.delete(key(url, credential));
  }
}

/** The credential itself is never kept, only its hash. */
function key(url: string, credential: string | undefined): string {
  return `${url}\n${credential ? createHash("sha256").update(credential).digest("hex") : "none"}`;
}
