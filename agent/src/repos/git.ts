import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A git failure, with git's own words (credentials never appear: they travel in the environment). */
export class GitError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

export interface GitRun {
  env?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** The most of git's stderr a failure message carries. */
const STDERR_KEEP = 4000;

/**
 * git never prompts, never reads the user's or the system's config, and never runs a pager.
 * HOME points nowhere, so curl never reads the agent user's ~/.netrc: a job's only credential
 * is its own.
 */
const QUIET_ENV = {
  HOME: "/nonexistent",
  GIT_TERMINAL_PROMPT: "0",
  GIT_ASKPASS: "",
  SSH_ASKPASS: "",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_PAGER: "cat",
  LC_ALL: "C",
};

/** Options of git's own that take a value (`--git-dir DIR`), so the subcommand is found after them. */
const VALUED_OPTIONS = new Set(["--git-dir", "--work-tree", "-C", "-c"]);

/** The subcommand of a git argv (`fetch` in `--git-dir D fetch origin`), for messages. */
export function subcommand(args: string[]): string {
  for (let i = 0; i < args.length; i++) {
    if (VALUED_OPTIONS.has(args[i]!)) i++;
    else if (!args[i]!.startsWith("-")) return args[i]!;
  }
  return "";
}

/** Runs git and returns its stdout; a non-zero exit, a timeout or an abort is a GitError. */
export function git(args: string[], run: GitRun): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("git", args, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...QUIET_ENV, ...run.env }, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-STDERR_KEEP)));
    const timer = setTimeout(() => child.kill("SIGKILL"), run.timeoutMs);
    const onAbort = () => child.kill("SIGKILL");
    run.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", (e) => reject(new GitError(`git could not run: ${e.message}`, "")));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      run.signal?.removeEventListener("abort", onAbort);
      if (code === 0) return resolve(Buffer.concat(out).toString());
      const why = signal ? (run.signal?.aborted ? "was stopped" : `timed out after ${Math.round(run.timeoutMs / 1000)}s`) : `failed (${code})`;
      reject(new GitError(`git ${subcommand(args)} ${why}: ${err.trim().split("\n").slice(-3).join(" / ")}`, err));
    });
  });
}

/**
 * The environment that hands one credential to git for one URL: a token (or `user:token`) as
 * an HTTP Authorization header scoped to that URL, or an SSH private key in a 0600 file (host
 * keys are trusted on first use and remembered in `knownHostsFile`).
 * Passed as GIT_CONFIG_* variables, so it is never on a command line another user can read.
 * Without a credential, ssh offers no key at all: the agent's own keys never speak for a job.
 */
export async function credentialEnv(url: string, credential: string | undefined, knownHostsFile: string): Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> {
  const ssh = `ssh -o BatchMode=yes -o GSSAPIAuthentication=no -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=${knownHostsFile}`;
  if (!credential) return { env: { GIT_SSH_COMMAND: `${ssh} -o PubkeyAuthentication=no` }, cleanup: async () => {} };
  if (/^https?:\/\//.test(url)) {
    const basic = credential.includes(":") ? credential : `x-access-token:${credential}`;
    return {
      env: { GIT_CONFIG_COUNT: "1", GIT_CONFIG_KEY_0: `http.${url}.extraHeader`, GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from(basic).toString("base64")}` },
      cleanup: async () => {},
    };
  }
  const dir = await mkdtemp(join(tmpdir(), "gridx-ssh-"));
  const keyFile = join(dir, "key");
  await writeFile(keyFile, credential.endsWith("\n") ? credential : credential + "\n", { mode: 0o600 });
  return {
    env: { GIT_SSH_COMMAND: `${ssh} -i ${keyFile} -o IdentitiesOnly=yes` },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
