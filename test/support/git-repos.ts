/** Node-only test fixtures shared by the agent and end-to-end tests (never loaded inside workerd). */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const gitEnv = { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com", GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" };

/** A real git repository made for a test: commit files, read commit ids. */
export class TestRepo {
  private constructor(readonly dir: string) {}

  /** A bare repository at `dir` (what a server serves) with a work tree beside it to commit from. */
  static create(dir: string, branch = "main"): TestRepo {
    const repo = new TestRepo(dir);
    mkdirSync(dir, { recursive: true });
    repo.git("init", "--quiet", "--initial-branch", branch);
    return repo;
  }

  git(...args: string[]): string {
    return execFileSync("git", args, { cwd: this.dir, env: gitEnv, encoding: "utf8" }).trim();
  }

  /** Writes the files and commits them; returns the new commit id. */
  commit(files: Record<string, string>, message = "change"): string {
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(this.dir, path)), { recursive: true });
      writeFileSync(join(this.dir, path), content);
    }
    this.git("add", "-A");
    this.git("commit", "--quiet", "-m", message);
    return this.git("rev-parse", "HEAD");
  }
}
