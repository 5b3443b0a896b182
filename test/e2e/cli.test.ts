import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { api, cp, isDone, launchOnlineAgent, runGridx, uniqueName, waitForJob } from "./helpers.ts";

/** The real CLI in the suite's own folder and config home. */
const gridx = (args: string[], opts: Parameters<typeof runGridx>[1] = {}) => runGridx(args, { ...opts, cwd: workDir, env: { XDG_CONFIG_HOME: configHome, ...opts.env } });

/**
 * Runs the CLI with --json (right after submit or run, since after a script flags are the
 * script's; last for the other commands) and parses its stdout, failing with its stderr when
 * it did not succeed.
 */
async function gridxJson(args: string[], env?: Record<string, string | undefined>): Promise<any> {
  const program = args[0] === "submit" || args[0] === "run";
  const res = await gridx(program ? [args[0]!, "--json", ...args.slice(1)] : [...args, "--json"], { env });
  if (res.code !== 0) throw new Error(`gridx ${args.join(" ")} exited ${res.code}: ${res.stderr}`);
  return JSON.parse(res.stdout);
}

const until = async (what: string, check: () => boolean, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

let workDir: string;
let configHome: string;

describe("the gridx CLI against wrangler dev and a real agent", () => {
  const pool = uniqueName("cli");
  const agentName = uniqueName("cli-node");
  let agent: AgentProcess;
  const script = (name: string, text: string) => {
    writeFileSync(join(workDir, name), text);
    return name;
  };

  beforeAll(async () => {
    workDir = mkdtempSync(join(cp().stateDir, "cli-"));
    configHome = mkdtempSync(join(cp().stateDir, "cli-config-"));
    agent = await launchOnlineAgent({ pool, name: agentName, slots: 2 });
  });

  afterAll(async () => {
    // A test that failed midway may leave a job running: cancel it so the agent drains at once.
    const { jobs } = (await api(`/v1/jobs?pool=${pool}&limit=200`)).json ?? { jobs: [] };
    for (const j of jobs as { id: string; status: string }[]) if (!isDone(j)) await api(`/v1/jobs/${j.id}/cancel`, { method: "POST" });
    await agent?.stop("SIGTERM");
  });

  it("run prints the job's output, stdout and stderr apart, and exits 0 when it completes", async () => {
    const file = script("hello.py", "import sys\nprint('hello from', sys.argv[1:])\nprint('a warning', file=sys.stderr)\n");
    const res = await gridx(["run", "--pool", pool, file, "--flag-for-the-script", "x"]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe("hello from ['--flag-for-the-script', 'x']\n");
    expect(res.stderr).toContain("a warning\n");
    expect(res.stderr).toMatch(/\[gridx: job j_\w+ queued in pool /);
  });

  it("run exits with the job's own exit code, for a script and for an --image command", async () => {
    const file = script("fail.py", "import sys\nprint('about to fail')\nsys.exit(3)\n");
    const res = await gridx(["run", "--pool", pool, file]);
    expect(res.stdout).toBe("about to fail\n");
    expect(res.stderr).toMatch(/failed: exit code 3/);
    expect(res.code).toBe(3);
    const command = await gridx(["run", "-q", "--pool", pool, "--image", "gridx/python:latest", "--", "python3", "-c", "import sys; print('argv', sys.argv[1:]); sys.exit(42)", "a b"]);
    expect(command.stdout).toBe("argv ['a b']\n");
    expect(command.code).toBe(42);
  });

  it("run --json writes one JSON object per line, log lines then the finished job", async () => {
    const file = script("two.py", "print('one')\nprint('two')\n");
    const res = await gridx(["run", "--json", "--pool", pool, file]);
    expect(res.code).toBe(0);
    const events = res.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type === "log" && e.stream === "stdout").map((e) => e.text)).toEqual(["one", "two"]);
    expect(events.at(-1)).toMatchObject({ type: "end", job: { status: "completed", exit_code: 0, pool } });
  });

  it("logs -f follows a running job to its end, in order", async () => {
    const file = script("tick.py", "import time\nfor i in range(5):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n");
    const submitted = await gridx(["submit", "--pool", pool, file]);
    expect(submitted.code).toBe(0);
    const id = submitted.stdout.trim();
    expect(id).toMatch(/^j_\w+$/);
    const followed = await gridx(["logs", id, "-f"]);
    expect(followed.code).toBe(0);
    expect(followed.stdout).toBe("tick 0\ntick 1\ntick 2\ntick 3\ntick 4\n");
    // Following ends only with the job.
    expect((await gridxJson(["status", id])).status).toBe("completed");
    const again = await gridx(["logs", id]);
    expect(again.stdout).toBe(followed.stdout);
  });

  it("cancel ends a sleeping job canceled", async () => {
    const file = script("sleep.py", "import time\nprint('sleeping', flush=True)\ntime.sleep(300)\n");
    const job = await gridxJson(["submit", "--pool", pool, file]);
    await waitForJob(job.id, (j) => j.status === "running" && j.stdout.includes("sleeping"));
    const res = await gridx(["cancel", job.id]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(`${job.id}  canceled\n`);
    const done = await waitForJob(job.id, isDone);
    expect(done.status).toBe("canceled");
    expect(done.finished_at).not.toBeNull();
    const status = await gridxJson(["status", job.id]);
    expect(status).toMatchObject({ id: job.id, status: "canceled" });
  });

  it("Ctrl-C during run cancels the job and exits 130", async () => {
    const file = script("sleep2.py", "import time\nprint('started', flush=True)\ntime.sleep(300)\n");
    const res = await gridx(["run", "--pool", pool, file], {
      started: (child, out) => {
        void until("the job's first line", () => out().stdout.includes("started")).then(() => child.kill("SIGINT"));
      },
    });
    expect(res.code).toBe(130);
    expect(res.stderr).toMatch(/canceling job (j_\w+)/);
    const id = /canceling job (j_\w+)/.exec(res.stderr)![1]!;
    expect((await waitForJob(id, isDone)).status).toBe("canceled");
  });

  it("--json of submit, status, list and workers parses, with the API's fields", async () => {
    const file = script("json.py", "print(6*7)\n");
    const submitted = await gridxJson(["submit", "--pool", pool, "--label", "nothing=here", "--priority", "5", "--memory", "256m", "--timeout", "2m", file]);
    expect(submitted).toMatchObject({ kind: "python", pool, status: "queued", priority: 5, limits: { memory_mb: 256, timeout_s: 120 }, requirements: { labels: { nothing: "here" } } });
    // No worker has that label: the job stays queued, which `list --status` shows.
    const queued = await gridxJson(["list", "--pool", pool, "--status", "queued"]);
    expect(queued.jobs.map((j: { id: string }) => j.id)).toContain(submitted.id);
    expect(queued.next_cursor === null || typeof queued.next_cursor === "string").toBe(true);
    const status = await gridxJson(["status", submitted.id]);
    expect(status).toMatchObject({ id: submitted.id, status: "queued", attempt: 0, spec: { task: { kind: "python", python: { script: "print(6*7)\n" } } } });
    const workers = await gridxJson(["workers", "--pool", pool]);
    expect(workers.workers).toEqual([expect.objectContaining({ name: agentName, pool, status: "online", slots: 2 })]);
    const canceled = await gridxJson(["cancel", submitted.id]);
    expect(canceled.status).toBe("canceled");

    const waited = await gridx(["submit", "--wait", "--json", "--pool", pool, "--image", "gridx/python:latest", "--", "python3", "-c", "raise SystemExit(7)"]);
    expect(waited.code).toBe(7);
    expect(JSON.parse(waited.stdout)).toMatchObject({ status: "failed", exit_code: 7, failure_reason: "exit_code" });
  });

  it("human output is aligned tables", async () => {
    const done = await gridx(["submit", "--wait", "--pool", pool, "--image", "gridx/python:latest", "--", "true"]);
    expect(done.code).toBe(0);
    const list = await gridx(["list", "--pool", pool, "--limit", "1"]);
    expect(list.code).toBe(0);
    const [header, row, ...rest] = list.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^ID +STATUS +KIND +PROJECT +POOL +EXIT +SUBMITTED BY +CREATED +RAN +NAME$/);
    expect(rest).toEqual([]);
    const at = (column: string) => row!.slice(header!.indexOf(column));
    expect(at("STATUS")).toMatch(/^completed +command +default +/);
    expect(at("POOL")).toMatch(new RegExp(`^${pool} +0 +admin +`));
    expect(list.stderr).toMatch(/more: gridx list --cursor j_\w+ --pool /);
    const workers = await gridx(["workers", "--pool", pool]);
    expect(workers.stdout).toMatch(new RegExp(`^NAME +ID +POOL +STATUS +VERSION +JOBS +CPUS +MEMORY +GPUS +SEEN +LABELS\\n${agentName} +w_\\w+ +${pool} +online +\\d+\\.\\d+\\.\\d+ +\\d/2 `));
    // The agent is this release's, which is what the control plane recommends.
    expect((await gridxJson(["workers", "--pool", pool, "--outdated"])).workers).toEqual([]);
  });

  it("artifacts ls and get list and download a job's outputs, checking sha256", async () => {
    const file = script("out.py", "import os\nos.makedirs('/work/output/out', exist_ok=True)\nopen('/work/output/out/result.txt', 'w').write('42\\n')\n");
    const run = await gridx(["run", "--json", "--pool", pool, file]);
    expect(run.code).toBe(0);
    const { job } = JSON.parse(run.stdout.trimEnd().split("\n").at(-1)!);
    const listed = await gridxJson(["artifacts", "ls", job.id]);
    expect(listed.artifacts.map((a: { name: string }) => a.name)).toContain("out/result.txt");
    const target = join(workDir, "result.txt");
    const got = await gridxJson(["artifacts", "get", job.id, "out/result.txt", "-o", target]);
    expect(got).toMatchObject({ path: target, name: "out/result.txt", size: 3 });
    expect(readFileSync(target, "utf8")).toBe("42\n");
    const missing = await gridx(["artifacts", "get", job.id, "nope.txt"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/has no artifact nope.txt; it has: .*out\/result.txt/);
  });

  it("login checks the token, saves URL and token 0600, and later commands use them", async () => {
    const home = mkdtempSync(join(cp().stateDir, "cli-login-"));
    const noEnv = { GRIDX_URL: undefined, GRIDX_TOKEN: undefined, XDG_CONFIG_HOME: home };
    const path = join(home, "gridx", "config.json");

    const refused = await gridx(["login", cp().url, "--token", "gxu_not-a-real-token"], { env: noEnv });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/refused the token/);
    expect(existsSync(path)).toBe(false);

    const notLoggedIn = await gridx(["workers"], { env: noEnv });
    expect(notLoggedIn.code).toBe(3);
    expect(notLoggedIn.stderr).toMatch(/gridx login URL/);

    // An API token made by the CLI for a new user of project default, read from stdin as a script would pipe it.
    const user = uniqueName("cli-user");
    expect((await gridx(["users", "create", user])).code).toBe(0);
    expect((await gridx(["members", "add", "default", user, "--role", "member"])).code).toBe(0);
    const token = (await gridx(["tokens", "create", "laptop", "--user", user])).stdout.trim();
    expect(token).toMatch(/^gxu_/);
    const login = await gridx(["login", `${cp().url}/`, "--json"], { env: noEnv, stdin: `${token}\n` });
    expect(login.code).toBe(0);
    expect(JSON.parse(login.stdout)).toEqual({ url: cp().url, config: path });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ url: cp().url, token });

    const workers = await gridx(["workers", "--pool", pool, "--json"], { env: noEnv });
    expect(workers.code).toBe(0);
    expect(JSON.parse(workers.stdout).workers[0].name).toBe(agentName);
    // A user token may not drain: the error says so and exits 3.
    const drain = await gridx(["drain", agentName, "--pool", pool], { env: noEnv });
    expect(drain.code).toBe(3);
    expect(drain.stderr).toMatch(/needs an admin token/);

    expect((await gridx(["logout"], { env: noEnv })).code).toBe(0);
    expect(existsSync(path)).toBe(false);
  });

  it("as the admin makes a user, a project and a token; as that user submits with --project, --name and --tag, finds it by tag, revokes the token and is refused", async () => {
    const user = uniqueName("cli-ada");
    const project = uniqueName("cli-lab");
    const created = await gridxJson(["users", "create", user]);
    expect(created).toMatchObject({ id: expect.stringMatching(/^u_/), name: user });
    expect(await gridxJson(["projects", "create", project, "--max-queued", "50"])).toMatchObject({ name: project, quotas: { max_queued_jobs: 50 } });
    const members = await gridxJson(["members", "add", project, user, "--role", "member"]);
    expect(members.members).toEqual([expect.objectContaining({ user, role: "member" })]);
    const issued = await gridxJson(["tokens", "create", "e2e", "--user", user, "--expires-in", "1h"]);
    expect(issued).toMatchObject({ kind: "user", user_id: created.id, token: expect.stringMatching(/^gxu_/) });
    // Issued an hour ahead of the request (give or take the request's own time).
    expect(Math.abs(Date.parse(issued.expires_at) - Date.parse(issued.created_at) - 3600_000)).toBeLessThan(60_000);

    // The user's own config home: its default project is set there, and the token comes from the environment.
    const as = { GRIDX_TOKEN: issued.token, XDG_CONFIG_HOME: mkdtempSync(join(cp().stateDir, "cli-ada-")) };
    const me = await gridxJson(["whoami"], as);
    expect(me).toEqual({ kind: "user", user: expect.objectContaining({ name: user }), projects: expect.arrayContaining([{ project, role: "member" }]) });

    const tag = `suite=${uniqueName("cli")}`;
    const done = await gridx(["submit", "--wait", "--project", project, "--name", "e2e lr sweep", "--tag", tag, "--tag", "run=1", "--pool", pool, "--image", "gridx/python:latest", "--", "true"], { env: as });
    expect(done.code).toBe(0);
    expect(done.stderr).toContain(`(project ${project})`);
    expect((await gridx(["config", "set", "project", project], { env: as })).code).toBe(0);
    const byDefault = await gridxJson(["submit", "--tag", tag, "--pool", pool, "--image", "gridx/python:latest", "--", "true"], as);
    expect(byDefault).toMatchObject({ project, submitted_by: user, tags: [tag] });
    await waitForJob(byDefault.id, isDone);

    const listed = await gridxJson(["list", "--tag", tag], as);
    expect(listed.jobs.map((j: any) => [j.project, j.name, j.submitted_by, j.tags])).toEqual([
      [project, null, user, [tag]],
      [project, "e2e lr sweep", user, [tag, "run=1"]],
    ]);
    const table = await gridx(["list", "--tag", tag, "--name", "lr sweep"], { env: as });
    expect(table.stdout.trimEnd().split("\n")[1]).toMatch(new RegExp(`^j_\\w+ +completed +command +${project} +${pool} +0 +${user} +.* +e2e lr sweep$`));
    // The project's queue quota and usage, as the member sees them.
    expect(await gridxJson(["projects", "show", project], as)).toMatchObject({ role: "member", quotas: { max_queued_jobs: 50 }, usage: { queued_jobs: 0 } });

    const tokens = await gridxJson(["tokens", "ls"], as);
    expect(tokens.tokens).toEqual([expect.objectContaining({ id: issued.id, user, name: "e2e", expires_at: issued.expires_at })]);
    const revoked = await gridx(["tokens", "revoke", issued.id], { env: as });
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toBe(`revoked API token ${issued.id}\n`);
    const refused = await gridx(["list"], { env: as });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/refused the token \(.*revoked\)/);
  });
});
