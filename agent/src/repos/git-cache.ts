import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { COMMIT_ID } from "../../../protocol/index.ts";
import type { Logger } from "../logger.ts";
import { folderBytes } from "../folder-bytes.ts";
import { AuthProofs } from "./auth-proofs.ts";
import { credentialEnv, git, GitError } from "./git.ts";

export interface GitCacheOptions {
  /** Where the bare mirrors live (the agent's state directory). */
  root: string;
  /** Mirrors past this total are evicted, least recently used first. */
  capBytes: number;
  /** One git fetch may take this long. */
  timeoutMs: number;
  /** Whether jobs may name local paths (`/path`, `file://`) as repositories. */
  allowLocal: boolean;
  /** How long the origin's word that a credential (or none) may read a repository serves cached commits; 0 asks every time. */
  authTtlMs: number;
  /** The clock proofs are timed by. */
  now?: () => number;
  log: Logger;
}

export interface Resolved {
  commit: string;
  /** Objects the fetch brought; 0 when the commit was already cached and nothing was fetched. */
  fetchedObjects: number;
}

/** A repository problem the job's author must fix: a missing commit, a refused URL, a failed fetch. */
export class RepoError extends Error {}

const USED_MARK = "gridx-used";
const URL_FILE = "gridx-url";

const isLocal = (url: string) => url.startsWith("/") || url.startsWith("file://");

/** What git says when the origin will not let this credential (or none) read the repository. */
const REFUSED = /authentication failed|could not read (username|password)|terminal prompts disabled|returned error: 40[13]|permission denied \(|repository not found|access denied/i;

/**
 * One bare mirror per repository URL. A job's commit is fetched only when the mirror lacks
 * it, and only that ref, so a cached repository never re-clones. Jobs with different
 * credentials share a mirror, so a cached commit goes only to a job whose own credential (or
 * none) the origin accepted for that URL within `authTtlMs` (see AuthProofs). Operations on
 * one repository run one at a time; different repositories run side by side.
 */
export class GitCache {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly inUse = new Map<string, number>();
  private readonly proofs: AuthProofs;

  constructor(private readonly opts: GitCacheOptions) {
    this.proofs = new AuthProofs(opts.authTtlMs, opts.now);
  }

  private dirOf(url: string) {
    return join(this.opts.root, createHash("sha256").update(url).digest("hex").slice(0, 32) + ".git");
  }

  private get knownHosts() {
    return join(this.opts.root, "known_hosts");
  }

  /** Runs `fn` alone on this repository, and keeps it from eviction meanwhile. */
  private async exclusive<T>(url: string, fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = this.dirOf(url);
    this.inUse.set(dir, (this.inUse.get(dir) ?? 0) + 1);
    const previous = this.locks.get(dir) ?? Promise.resolve();
    const run = previous.then(() => fn(dir), () => fn(dir));
    const settled = run.catch(() => undefined);
    this.locks.set(dir, settled);
    try {
      return await run;
    } finally {
      const left = (this.inUse.get(dir) ?? 1) - 1;
      if (left) this.inUse.set(dir, left);
      else this.inUse.delete(dir);
      if (this.locks.get(dir) === settled) this.locks.delete(dir);
    }
  }

  /**
   * The commit `ref` names in `url`. A full commit id already in the mirror costs no fetch, only
   * an `ls-remote` with the job's credential when no proof of it is fresh; anything else
   * fetches just that ref (a branch or tag is resolved anew each time). Local repositories are
   * the operator's, allowed by --allow-local-repos, and need no proof.
   */
  async resolve(url: string, ref: string, credential: string | undefined, signal?: AbortSignal): Promise<Resolved> {
    const local = isLocal(url);
    if (local && !this.opts.allowLocal) throw new RepoError(`${url}: local repository paths are not allowed on this worker (start the agent with --allow-local-repos)`);
    const resolved = await this.exclusive(url, async (dir) => {
      const run = { timeoutMs: this.opts.timeoutMs, signal };
      await this.ensureMirror(dir, url);
      await touch(join(dir, USED_MARK));
      if (COMMIT_ID.test(ref) && (await hasCommit(dir, ref))) {
        if (!local) await this.authorize(dir, url, credential, run);
        return { commit: ref, fetchedObjects: 0 };
      }
      const auth = await credentialEnv(url, credential, this.knownHosts);
      try {
        const before = await objectCount(dir);
        const fetch = (refspecs: string[]) => git(["--git-dir", dir, "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "origin", ...refspecs], { ...run, env: auth.env });
        let commit: string | null = null;
        try {
          await fetch([ref]);
          commit = (await git(["--git-dir", dir, "rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}"], run)).trim();
        } catch (err) {
          if (!(err instanceof GitError) || !COMMIT_ID.test(ref) || !/not our ref|couldn't find remote ref|unadvertised object|not found/i.test(err.stderr)) throw err;
          // A server that refuses wants by id: fetch its branches and tags, then look again.
          await fetch(["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]);
          commit = (await hasCommit(dir, ref)) ? ref : null;
        }
        if (!commit || (COMMIT_ID.test(ref) && commit !== ref)) throw new RepoError(`commit ${ref} does not exist in ${url}`);
        // The origin served this credential, so it may have the cache's copy too.
        this.proofs.prove(url, credential);
        // A ref keeps the commit from garbage collection, and tells the next fetch what we have.
        await git(["--git-dir", dir, "update-ref", `refs/gridx/${commit}`, commit], run);
        return { commit, fetchedObjects: (await objectCount(dir)) - before };
      } catch (err) {
        if (err instanceof RepoError) throw err;
        const text = err instanceof Error ? err.message : String(err);
        if (/couldn't find remote ref|not our ref|unadvertised object/i.test(text)) throw new RepoError(`commit or ref ${ref} does not exist in ${url}`);
        throw this.failure(url, credential, `could not fetch ${ref} from ${url}`, err);
      } finally {
        await auth.cleanup();
      }
    });
    await this.evict(this.dirOf(url)).catch((err: unknown) => this.opts.log.warn("git cache eviction failed", { err }));
    return resolved;
  }

  /** Asks the origin, unless a fresh proof answers, whether `credential` (or none) may read `url`. */
  private async authorize(dir: string, url: string, credential: string | undefined, run: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    if (this.proofs.admits(url, credential)) return;
    const auth = await credentialEnv(url, credential, this.knownHosts);
    try {
      // Branch heads only: the cheapest question the origin answers only for a reader.
      await git(["--git-dir", dir, "ls-remote", "--heads", "origin"], { ...run, env: auth.env });
    } catch (err) {
      throw this.failure(url, credential, `could not check this job's access to ${url}`, err);
    } finally {
      await auth.cleanup();
    }
    this.proofs.prove(url, credential);
  }

  /** A failed talk with the origin as the job's RepoError: a refusal says so, anything else keeps git's words. */
  private failure(url: string, credential: string | undefined, doing: string, err: unknown): RepoError {
    const text = err instanceof Error ? err.message : String(err);
    const stderr = err instanceof GitError ? err.stderr : text;
    if (!REFUSED.test(stderr)) return new RepoError(`${doing}: ${redact(text, credential)}`);
    this.proofs.refuse(url, credential);
    return new RepoError(
      credential
        ? `the origin refused this job's credentials for ${url}`
        : `${url} needs credentials: the origin refused a request without them (name a project secret in code_credentials or env_credentials)`,
    );
  }

  /** Writes the commit's files (no .git) into `target`. */
  export(url: string, commit: string, target: string): Promise<void> {
    return this.exclusive(url, async (dir) => {
      await mkdir(target, { recursive: true, mode: 0o755 });
      await pipeArchive(dir, commit, spawn("tar", ["-x", "--no-same-owner", "-C", target], { stdio: ["pipe", "ignore", "pipe"] }));
    });
  }

  /** The commit's files as a tar stream (a Docker build context), read while the repository is held. */
  async withArchive<T>(url: string, commit: string, use: (tar: Readable) => Promise<T>): Promise<T> {
    return this.exclusive(url, async (dir) => {
      const child = spawn("git", ["--git-dir", dir, "archive", "--format=tar", commit], { stdio: ["ignore", "pipe", "pipe"] });
      try {
        return await use(child.stdout);
      } finally {
        child.kill();
      }
    });
  }

  /**
   * One file of the commit, byte for byte as `withArchive` puts it in the build context: git
   * archive applies the tree's own export-subst, eol and working-tree-encoding attributes, so
   * `git show` could read another text than the engine gets. A RepoError when the path is no
   * regular file there (missing, a symlink, a folder) or is larger than `maxBytes`.
   */
  async archivedFile(url: string, commit: string, path: string, maxBytes: number): Promise<Buffer> {
    const tar = await this.exclusive(url, (dir) => archiveBytes(dir, commit, path, maxBytes + TAR_OVERHEAD_BYTES));
    if (tar === null) throw new RepoError(`${path} in ${url} @ ${commit.slice(0, 12)} is larger than ${maxBytes} bytes`);
    const entry = tarEntry(tar, path);
    if (entry?.kind !== "file") throw new RepoError(`${path} is not a file in ${url} @ ${commit.slice(0, 12)}${entry ? ` (it is a ${entry.kind})` : ""}`);
    if (entry.data.length > maxBytes) throw new RepoError(`${path} in ${url} @ ${commit.slice(0, 12)} is larger than ${maxBytes} bytes`);
    return entry.data;
  }

  /** URLs of the cached repositories, most recently used first. */
  async urls(): Promise<string[]> {
    const entries = await this.mirrors();
    return entries.sort((a, b) => b.usedAt - a.usedAt).map((e) => e.url);
  }

  private async ensureMirror(dir: string, url: string) {
    if (await stat(join(dir, URL_FILE)).catch(() => null)) return;
    await rm(dir, { recursive: true, force: true });
    await mkdir(this.opts.root, { recursive: true });
    const run = { timeoutMs: this.opts.timeoutMs };
    await git(["init", "--quiet", "--bare", dir], run);
    await git(["--git-dir", dir, "config", "remote.origin.url", url], run);
    await git(["--git-dir", dir, "config", "gc.autoDetach", "false"], run);
    await writeFile(join(dir, URL_FILE), url);
  }

  private async mirrors(): Promise<{ dir: string; url: string; usedAt: number }[]> {
    const names = await readdir(this.opts.root).catch(() => [] as string[]);
    const found = [];
    for (const name of names.filter((n) => n.endsWith(".git"))) {
      const dir = join(this.opts.root, name);
      const url = await readFile(join(dir, URL_FILE), "utf8").catch(() => null);
      const usedAt = (await stat(join(dir, USED_MARK)).catch(() => null))?.mtimeMs ?? 0;
      if (url !== null) found.push({ dir, url, usedAt });
    }
    return found;
  }

  /**
   * Drops least recently used mirrors until the cache fits its cap; never one in use, nor
   * `keep`, the one just fetched for a job that is about to export from it.
   */
  private async evict(keep: string): Promise<void> {
    const entries = await this.mirrors();
    const sized = await Promise.all(entries.map(async (e) => ({ ...e, bytes: await folderBytes(e.dir) })));
    let total = sized.reduce((n, e) => n + e.bytes, 0);
    for (const e of sized.sort((a, b) => a.usedAt - b.usedAt)) {
      if (total <= this.opts.capBytes) return;
      if (this.inUse.has(e.dir) || e.dir === keep) continue;
      await rm(e.dir, { recursive: true, force: true });
      total -= e.bytes;
      this.opts.log.info("evicted a cached repository", { url: e.url, bytes: e.bytes });
    }
  }
}

async function hasCommit(dir: string, commit: string): Promise<boolean> {
  return git(["--git-dir", dir, "cat-file", "-e", `${commit}^{commit}`], { timeoutMs: 30_000 }).then(
    () => true,
    () => false,
  );
}

/** Loose plus packed objects in a repository. */
async function objectCount(dir: string): Promise<number> {
  const out = await git(["--git-dir", dir, "count-objects", "-v"], { timeoutMs: 30_000 });
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, "m").exec(out)?.[1] ?? 0);
  return field("count") + field("in-pack");
}

async function touch(path: string) {
  const now = new Date();
  await utimes(path, now, now).catch(() => writeFile(path, ""));
}

function pipeArchive(dir: string, commit: string, tar: ReturnType<typeof spawn>): Promise<void> {
  return new Promise((resolve, reject) => {
    const archive = spawn("git", ["--git-dir", dir, "archive", "--format=tar", commit], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    archive.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    tar.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    archive.stdout!.pipe(tar.stdin!);
    let pending = 2;
    const done = (what: string) => (code: number | null) => {
      if (code !== 0) return reject(new Error(`${what} failed (${code}): ${err.trim().slice(-500)}`));
      if (--pending === 0) resolve();
    };
    archive.on("close", done("git archive"));
    tar.on("close", done("tar"));
    archive.on("error", reject);
    tar.on("error", reject);
  });
}

/** What git archive adds around one file: its global and extended headers, folders, the file's header, the end blocks. */
const TAR_OVERHEAD_BYTES = 64 * 1024;

/** `git archive` of one path (taken literally, not as a pattern); null when the archive runs past `maxBytes`. */
function archiveBytes(dir: string, commit: string, path: string, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const child = spawn("git", ["--literal-pathspecs", "--git-dir", dir, "archive", "--format=tar", commit, "--", path], { stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let bytes = 0;
    let over = false;
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      bytes += c.length;
      if (bytes > maxBytes) {
        over = true;
        child.kill();
      } else chunks.push(c);
    });
    child.stderr.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-2000)));
    child.on("error", reject);
    child.on("close", (code) => {
      if (over) resolve(null);
      else if (code === 0) resolve(Buffer.concat(chunks));
      // A path the commit does not have: git says so and exits 128.
      else if (/did not match any files/.test(err)) resolve(Buffer.alloc(0));
      else reject(new RepoError(`git archive failed (${code}): ${err.trim().slice(-500)}`));
    });
  });
}

const TAR_TYPES: Record<string, "file" | "symlink" | "folder" | "link"> = { "0": "file", "\0": "file", "1": "link", "2": "symlink", "5": "folder" };

/**
 * The entry at `path` in a tar (ustar names with their prefix, or a pax `path`), or null. Only
 * what git archive writes is read: pax global and extended headers, and plain entries.
 */
export function tarEntry(tar: Buffer, path: string): { kind: "file"; data: Buffer } | { kind: "symlink" | "folder" | "link" | "special file" } | null {
  const text = (at: number, len: number) => tar.subarray(at, at + len).toString("utf8").replace(/\0.*$/s, "");
  let paxPath: string | null = null;
  for (let head = 0; head + 512 <= tar.length; ) {
    if (tar.subarray(head, head + 512).every((b) => b === 0)) return null;
    const size = parseInt(text(head + 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(tar[head + 156]!);
    const data = tar.subarray(head + 512, head + 512 + size);
    const prefix = text(head + 345, 155);
    const ustarName = (prefix ? `${prefix}/` : "") + text(head, 100);
    head += 512 + Math.ceil(size / 512) * 512;
    if (type === "g") continue;
    if (type === "x") {
      paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString("utf8"))?.[1] ?? null;
      continue;
    }
    const name = paxPath ?? ustarName;
    paxPath = null;
    if (name.replace(/\/$/, "") !== path) continue;
    const kind = TAR_TYPES[type] ?? "special file";
    return kind === "file" ? { kind, data } : { kind };
  }
  return null;
}

/** A credential can never end up in a message, even if a server echoes it. */
function redact(text: string, credential: string | undefined): string {
  return credential ? text.split(credential).join("[redacted]") : text;
}
