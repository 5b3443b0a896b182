import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CliError } from "../../cli/src/errors.ts";
import { runCli } from "./fake-io.ts";

/** A request the fake control plane saw. */
interface Seen {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
}
type Reply = { status: number; body?: unknown };

/*
 * The commands against a fake control plane over real HTTP: what each sends (method, path,
 * query, body) is what these tests hold; the canned answers carry just the fields printed.
 */
let server: Server;
let url: string;
let seen: Seen[] = [];
let routes: Record<string, Reply> = {};

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = "";
    req.on("data", (c: Buffer) => (text += c.toString()));
    req.on("end", () => {
      const u = new URL(req.url!, "http://x");
      seen.push({ method: req.method!, path: u.pathname, query: Object.fromEntries(u.searchParams), body: text ? JSON.parse(text) : undefined });
      const reply = routes[`${req.method} ${u.pathname}`] ?? { status: 404, body: { error: { code: "not_found", message: `no route ${req.method} ${u.pathname}` } } };
      res.writeHead(reply.status, { "content-type": "application/json" });
      res.end(reply.body === undefined ? "" : JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

let configHome: string;
beforeEach(() => {
  seen = [];
  routes = {};
  configHome = mkdtempSync(join(tmpdir(), "gridx-cli-commands-"));
});

const gridx = (argv: string[], env: Record<string, string> = {}) => runCli(argv, { GRIDX_URL: url, GRIDX_TOKEN: "gxu_test", XDG_CONFIG_HOME: configHome, ...env });

const job = (over: Record<string, unknown> = {}) => ({
  id: "j_1",
  status: "queued",
  kind: "command",
  project: "lab",
  name: null,
  tags: [],
  submitted_by: "ada",
  pool: "default",
  exit_code: null,
  failure_reason: null,
  created_at: new Date().toISOString(),
  started_at: null,
  finished_at: null,
  ...over,
});
/** A job's workflow fields when it has no array, retry policy, attempts or relatives. */
const NO_WORKFLOW = { array_id: null, array_index: null, rerun_of: null, schedule_id: null, retry: null, queue_ttl_s: null, retry_at: null, attempts: [], usage: null, parents: [], children: [] };
const project = (over: Record<string, unknown> = {}) => ({
  name: "lab",
  quotas: {},
  weight: 1,
  usage: { running_jobs: 0, queued_jobs: 0, gpus: 0, dataset_bytes: 0 },
  role: "owner",
  created_at: new Date().toISOString(),
  ...over,
});

describe("job commands and the project", () => {
  it("submit sends --name, each --tag and the project: the flag, else GRIDX_PROJECT, else the saved default", async () => {
    routes["POST /v1/jobs"] = { status: 201, body: job() };
    expect((await gridx(["config", "set", "project", "lab"])).code).toBe(0);
    expect(JSON.parse(readFileSync(join(configHome, "gridx", "config.json"), "utf8"))).toEqual({ project: "lab" });

    const res = await gridx(["submit", "--name", "lr sweep", "--tag", "sweep=lr", "--tag", "seed=1", "--image", "img", "--", "true"]);
    expect(res.code).toBe(0);
    expect(res.stderr).toContain("queued in pool default (project lab)");
    await gridx(["submit", "--project", "other", "--image", "img", "--", "true"], { GRIDX_PROJECT: "from-env" });
    await gridx(["submit", "--image", "img", "--", "true"], { GRIDX_PROJECT: "from-env" });
    expect(seen.map((s) => s.body)).toEqual([
      { kind: "command", command: { image: "img", argv: ["true"] }, project: "lab", name: "lr sweep", tags: ["sweep=lr", "seed=1"] },
      { kind: "command", command: { image: "img", argv: ["true"] }, project: "other" },
      { kind: "command", command: { image: "img", argv: ["true"] }, project: "from-env" },
    ]);

    expect((await gridx(["config", "unset", "project"])).stdout).toBe("project unset (was lab)\n");
    await gridx(["submit", "--image", "img", "--", "true"]);
    expect(seen.at(-1)!.body).not.toHaveProperty("project");
  });

  it("list filters by tag, name, submitter and the default project, -A lists every project, and shows who and what", async () => {
    routes["GET /v1/jobs"] = { status: 200, body: { jobs: [job({ name: "lr sweep", tags: ["sweep=lr"] })], next_cursor: "j_0" } };
    await gridx(["config", "set", "project", "lab"]);
    const res = await gridx(["list", "--tag", "sweep=lr", "--name", "lr sweep", "--submitted-by", "ada"]);
    expect(res.code).toBe(0);
    expect(seen[0]).toMatchObject({ method: "GET", path: "/v1/jobs", query: { limit: "20", project: "lab", tag: "sweep=lr", name: "lr sweep", submitted_by: "ada" } });
    const [header, row] = res.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^ID +STATUS +KIND +PROJECT +POOL +EXIT +SUBMITTED BY +CREATED +RAN +NAME$/);
    expect(row).toMatch(/^j_1 +queued +command +lab +default +- +ada +just now +- +lr sweep$/);
    expect(res.stderr).toBe("more: gridx list --cursor j_0 --project lab --tag sweep=lr --name 'lr sweep' --submitted-by ada (or --all)\n");

    await gridx(["list", "-A"]);
    expect(seen[1]!.query).toEqual({ limit: "20" });
  });

  it("status shows the project, name, tags, submitter and why a job waits", async () => {
    routes["GET /v1/jobs/j_1"] = {
      status: 200,
      body: {
        ...job({ name: "lr sweep", tags: ["sweep=lr", "seed=1"] }),
        attempt: 0,
        max_retries: 2,
        priority: 0,
        pending_reason: "waiting for quota max_running_jobs: 4 of 4 jobs running",
        failure_message: null,
        worker_id: null,
        limits: { cpus: 1, memory_mb: 512, pids: 256, timeout_s: 3600 },
        requirements: { gpus: 0, labels: {} },
        artifacts: [],
        ...NO_WORKFLOW,
      },
    };
    const { stdout } = await gridx(["status", "j_1"]);
    expect(stdout).toMatch(/^name +lr sweep$/m);
    expect(stdout).toMatch(/^waiting +waiting for quota max_running_jobs: 4 of 4 jobs running$/m);
    expect(stdout).toMatch(/^project +lab$/m);
    expect(stdout).toMatch(/^submitted by +ada$/m);
    expect(stdout).toMatch(/^tags +sweep=lr seed=1$/m);
  });

  it("status shows the retry budget, each attempt's outcome and usage, the job's usage, its array, parents and children", async () => {
    const usage = (cpu_s: number, peak_memory_mb: number, wall_s: number) => ({ cpu_s, peak_memory_mb, gpu_s: 0, wall_s });
    routes["GET /v1/jobs/j_1"] = {
      status: 200,
      body: {
        ...job({ status: "queued" }),
        ...NO_WORKFLOW,
        attempt: 2,
        max_retries: 0,
        priority: 0,
        pending_reason: "retrying after attempt 2 failed (oom)",
        failure_message: null,
        worker_id: null,
        limits: { cpus: 1, memory_mb: 512, pids: 256, timeout_s: 3600 },
        requirements: { gpus: 0, labels: {} },
        artifacts: [],
        array_id: "a_9",
        array_index: 3,
        rerun_of: "j_0",
        retry: { on: ["exit_code", "oom"], exit_codes: [3], max: 3, backoff_s: 10 },
        queue_ttl_s: 3600,
        attempts: [
          { attempt: 1, worker_id: "w_1", worker_name: "gpu-1", status: "finished", exit_code: 3, failure_reason: "exit_code", usage: usage(2.5, 100, 4) },
          { attempt: 2, worker_id: "w_2", worker_name: null, status: "finished", exit_code: 137, failure_reason: "oom", usage: null },
        ],
        usage: usage(2.5, 100, 4),
        parents: [
          { job: "j_p", condition: "completed", status: "completed" },
          { job: "a_p", condition: "finished", status: null },
        ],
        children: [{ job: "j_c", condition: "completed", status: "queued" }],
      },
    };
    const { stdout } = await gridx(["status", "j_1"]);
    expect(stdout).toMatch(/^waiting +retrying after attempt 2 failed \(oom\)$/m);
    expect(stdout).toMatch(/^attempt +2 of up to 4 \(retries exit_code 3, oom, up to 3, after 10s, doubling\)$/m);
    expect(stdout).toMatch(/^array +a_9 task 3 \(gridx array a_9\)$/m);
    expect(stdout).toMatch(/^rerun of +j_0$/m);
    expect(stdout).toMatch(/^usage +2\.5s cpu, 100 MiB peak, 0ms gpu, 4\.0s wall$/m);
    expect(stdout).toMatch(/^queue ttl +1h00m$/m);
    expect(stdout).toMatch(/^parents +j_p completed \(needs completed\), a_p \(array, needs finished\)$/m);
    expect(stdout).toMatch(/^children +j_c queued \(needs completed\)$/m);
    expect(stdout).toMatch(/^ATTEMPT +WORKER +OUTCOME +USAGE$/m);
    expect(stdout).toMatch(/^1 +gpu-1 +exit 3 +2\.5s cpu, 100 MiB peak, 0ms gpu, 4\.0s wall$/m);
    expect(stdout).toMatch(/^2 +w_2 +oom +-$/m);
  });

  it("submit sends the workflow flags; an array prints its id, and --wait or run refuse one", async () => {
    routes["POST /v1/jobs"] = { status: 201, body: job({ array_id: "a_7", array_index: 0 }) };
    const res = await gridx(["submit", "--array", "4", "--after", "j_0:finished", "--retry-on", "oom", "--retries", "2", "--artifact", "j_0:model.pt", "--image", "img", "--", "true"]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe("a_7\n");
    expect(res.stderr).toContain("gridx array a_7");
    expect(seen[0]!.body).toEqual({
      kind: "command",
      command: { image: "img", argv: ["true"] },
      inputs: [{ artifact: { job: "j_0", name: "model.pt" }, path: "model.pt" }],
      array: { count: 4 },
      depends_on: [{ job: "j_0", condition: "finished" }],
      retry: { on: ["oom"], max: 2 },
    });
    await expect(gridx(["submit", "--wait", "--array", "4", "--image", "img", "--", "true"])).rejects.toThrow("--wait waits for one job");
    await expect(gridx(["run", "--array", "4", "--image", "img", "--", "true"])).rejects.toThrow("gridx run follows one job");
    await expect(gridx(["submit", "--after", "j_0:maybe", "--image", "img", "--", "true"])).rejects.toThrow("--after takes ID or ID:finished");
    expect(seen).toHaveLength(1);
  });

  it("names the workflow flag that set a field the server refused", async () => {
    routes["POST /v1/jobs"] = { status: 400, body: { error: { code: "invalid_request", message: "at most 10000", field: "array.count" } } };
    await expect(gridx(["submit", "--array", "20000", "--image", "img", "--", "true"])).rejects.toThrow("(set by --array)");
    routes["POST /v1/jobs"] = { status: 400, body: { error: { code: "invalid_request", message: "too many", field: "retry.max" } } };
    await expect(gridx(["submit", "--retry-on", "oom", "--retries", "99", "--image", "img", "--", "true"])).rejects.toThrow("(set by --retries)");
  });

  it("rerun posts to the job's rerun and prints the copy's id", async () => {
    routes["POST /v1/jobs/j_1/rerun"] = { status: 201, body: job({ id: "j_2", rerun_of: "j_1", array_id: "a_7" }) };
    const res = await gridx(["rerun", "j_1"]);
    expect(res.code).toBe(0);
    expect(seen[0]).toMatchObject({ method: "POST", path: "/v1/jobs/j_1/rerun" });
    // A rerun array task is one job to follow, not a new array.
    expect(res.stdout).toBe("j_2\n");
    expect(res.stderr).toContain("job j_2 (a rerun of j_1) queued in pool default (project lab)");
    routes["POST /v1/jobs/j_1/rerun"] = { status: 403, body: { error: { code: "forbidden", message: "this needs the member role" } } };
    await expect(gridx(["rerun", "j_1"])).rejects.toThrow("this needs the member role: rerunning needs the member role in the job's project");
    await expect(gridx(["rerun"])).rejects.toThrow("give one job id: gridx rerun ID");
  });

  it("array shows the tasks by state and the failed indices; array cancel posts and shows the array after", async () => {
    const summary = (over: Record<string, unknown> = {}) => ({
      id: "a_7",
      project: "lab",
      pool: "default",
      name: "shards",
      count: 10,
      submitted_by: "ada",
      created_at: new Date().toISOString(),
      status: "running",
      counts: { queued: 4, assigned: 0, running: 2, completed: 2, failed: 2, canceled: 0 },
      failed_indices: [3, 8],
      first_job: "j_1",
      ...over,
    });
    routes["GET /v1/arrays/a_7"] = { status: 200, body: summary() };
    const { stdout } = await gridx(["array", "a_7"]);
    expect(stdout).toMatch(/^status +running$/m);
    expect(stdout).toMatch(/^tasks +10 tasks: 4 queued, 2 running, 2 completed, 2 failed$/m);
    expect(stdout).toMatch(/^failed +3, 8 \(gridx list --array a_7 --status failed\)$/m);
    expect(stdout).toMatch(/^task 0 +j_1$/m);

    routes["POST /v1/arrays/a_7/cancel"] = { status: 200, body: summary({ status: "canceled", counts: { queued: 0, assigned: 0, running: 0, completed: 2, failed: 2, canceled: 6 } }) };
    const canceled = await gridx(["array", "cancel", "a_7"]);
    expect(seen.at(-1)).toMatchObject({ method: "POST", path: "/v1/arrays/a_7/cancel" });
    expect(canceled.stdout).toMatch(/^tasks +10 tasks: 2 completed, 2 failed, 6 canceled$/m);

    routes["GET /v1/jobs"] = { status: 200, body: { jobs: [], next_cursor: null } };
    await gridx(["list", "--array", "a_7", "--status", "failed"]);
    expect(seen.at(-1)!.query).toMatchObject({ array: "a_7", status: "failed" });
  });

  it("datasets upload and ls name the project", async () => {
    routes["GET /v1/datasets"] = { status: 200, body: { datasets: [], next_cursor: null } };
    await gridx(["datasets", "ls", "--project", "lab"]);
    await gridx(["datasets", "ls"], { GRIDX_PROJECT: "env" });
    await gridx(["datasets", "ls", "-A"], { GRIDX_PROJECT: "env" });
    expect(seen.map((s) => s.query)).toEqual([{ project: "lab" }, { project: "env" }, {}]);
  });
});

describe("projects and members", () => {
  it("projects lists role, usage against quotas and weight", async () => {
    routes["GET /v1/projects"] = {
      status: 200,
      body: { projects: [project({ quotas: { max_running_jobs: 4, max_dataset_bytes: 1024 ** 3 }, usage: { running_jobs: 3, queued_jobs: 7, gpus: 1, dataset_bytes: 512 * 1024 ** 2 } }), project({ name: "default", role: "member" })] },
    };
    const { stdout } = await gridx(["projects"]);
    expect(stdout.trimEnd().split("\n")).toEqual([
      "NAME     ROLE    RUNNING  QUEUED  GPUS  DATASETS           WEIGHT",
      "lab      owner   3/4      7       1     512.0 MiB/1.0 GiB  1",
      "default  member  0        0       0     0 B                1",
    ]);
  });

  it("projects create sends the quotas and weight the flags give", async () => {
    routes["POST /v1/projects"] = { status: 201, body: project() };
    await gridx(["projects", "create", "lab", "--max-running", "8", "--max-dataset-bytes", "1t", "--weight", "2.5"]);
    expect(seen[0]).toMatchObject({ method: "POST", path: "/v1/projects", body: { name: "lab", quotas: { max_running_jobs: 8, max_dataset_bytes: 1024 ** 4 }, weight: 2.5 } });
  });

  it("projects set reads the current quotas and sends them back whole, with the changes", async () => {
    routes["GET /v1/projects/lab"] = { status: 200, body: project({ quotas: { max_running_jobs: 4, max_gpus: 2 } }) };
    routes["PATCH /v1/projects/lab"] = { status: 200, body: project({ quotas: { max_running_jobs: 4, max_queued_jobs: 100 } }) };
    const res = await gridx(["projects", "set", "lab", "--max-queued", "100", "--max-gpus", "none"]);
    expect(res.code).toBe(0);
    expect(seen.map((s) => [s.method, s.path, s.body])).toEqual([
      ["GET", "/v1/projects/lab", undefined],
      ["PATCH", "/v1/projects/lab", { quotas: { max_running_jobs: 4, max_queued_jobs: 100 } }],
    ]);
    expect(res.stdout).toMatch(/^queued jobs +0\/100$/m);
    expect(res.stdout).toMatch(/^gpus in use +0  \(no quota\)$/m);

    // The weight alone leaves the quotas out of the body: nothing to read first.
    seen = [];
    await gridx(["projects", "set", "lab", "--weight", "3"]);
    expect(seen.map((s) => [s.method, s.body])).toEqual([["PATCH", { weight: 3 }]]);
  });

  it("members ls, add and rm call the project's member routes", async () => {
    const members = { members: [{ user_id: "u_1", user: "ada", role: "viewer", added_at: new Date().toISOString() }] };
    routes["GET /v1/projects/lab/members"] = { status: 200, body: members };
    routes["PUT /v1/projects/lab/members/ada"] = { status: 200, body: members };
    routes["DELETE /v1/projects/lab/members/ada"] = { status: 204 };
    expect((await gridx(["members", "ls", "lab"])).stdout).toMatch(/^USER +ROLE +ADDED +ID\nada +viewer +just now +u_1\n$/);
    expect((await gridx(["members", "add", "lab", "ada", "--role", "viewer"])).stdout).toBe("ada is viewer of lab\n");
    expect((await gridx(["members", "rm", "lab", "ada"])).stdout).toBe("ada removed from lab\n");
    expect(seen.map((s) => [s.method, s.path, s.body])).toEqual([
      ["GET", "/v1/projects/lab/members", undefined],
      ["PUT", "/v1/projects/lab/members/ada", { role: "viewer" }],
      ["DELETE", "/v1/projects/lab/members/ada", undefined],
    ]);
  });

  it("a 403 names the role needed and exits 3", async () => {
    routes["PUT /v1/projects/lab/members/ada"] = { status: 403, body: { error: { code: "forbidden", message: "this needs the owner role in project lab; you are member" } } };
    const run = gridx(["members", "add", "lab", "ada", "--role", "member"]);
    await expect(run).rejects.toThrow(CliError);
    await expect(gridx(["members", "add", "lab", "ada", "--role", "member"])).rejects.toMatchObject({ exitCode: 3, message: expect.stringMatching(/owner role .*: ask an owner of the project/) });
  });
});

describe("users and tokens", () => {
  it("users create and whoami", async () => {
    routes["POST /v1/users"] = { status: 201, body: { id: "u_1", name: "ada", created_at: new Date().toISOString() } };
    routes["GET /v1/me"] = { status: 200, body: { kind: "user", user: { id: "u_1", name: "ada", created_at: new Date().toISOString() }, projects: [{ project: "default", role: "member" }, { project: "lab", role: "owner" }] } };
    expect((await gridx(["users", "create", "ada"])).stdout).toBe("u_1\n");
    expect(seen[0]!.body).toEqual({ name: "ada" });
    const me = await gridx(["whoami"]);
    expect(me.stdout).toMatch(/^you are +ada \(u_1\)\nprojects +default \(member\), lab \(owner\)\n/);
  });

  it("tokens create sends the user and the lifetime in seconds", async () => {
    routes["POST /v1/api-tokens"] = { status: 201, body: { id: "tok_1", token: "gxu_secret", kind: "user", name: "laptop", pool: null, user_id: "u_1", created_at: new Date().toISOString(), expires_at: new Date(Date.now() + 30 * 86400_000).toISOString() } };
    const res = await gridx(["tokens", "create", "laptop", "--user", "ada", "--expires-in", "30d"]);
    expect(res.stdout).toBe("gxu_secret\n");
    expect(res.stderr).toMatch(/acting as ada, expires in 30d/);
    await gridx(["tokens", "create", "mine"]);
    expect(seen.map((s) => s.body)).toEqual([{ name: "laptop", user: "ada", expires_in_s: 30 * 86400 }, { name: "mine" }]);
  });

  it("tokens ls lists API tokens, or agent tokens with --agent", async () => {
    const t = { id: "tok_1", kind: "user", name: "laptop", pool: null, user_id: "u_1", user: "ada", created_at: new Date().toISOString(), last_used_at: null, expires_at: null };
    routes["GET /v1/api-tokens"] = { status: 200, body: { tokens: [t] } };
    routes["GET /v1/agent-tokens"] = { status: 200, body: { tokens: [{ ...t, id: "tok_2", kind: "agent", name: "lab-3", pool: "gpu", user_id: null, user: null }] } };
    expect((await gridx(["tokens", "ls"])).stdout).toMatch(/^ID +NAME +USER +CREATED +LAST USED +EXPIRES\ntok_1 +laptop +ada +just now +never +never\n$/);
    expect((await gridx(["tokens", "ls", "--agent"])).stdout).toMatch(/^ID +NAME +POOL +CREATED +LAST USED +EXPIRES\ntok_2 +lab-3 +gpu +/);
  });

  it("tokens revoke finds the token's kind: an API token, else an agent token", async () => {
    routes["DELETE /v1/api-tokens/tok_api"] = { status: 204 };
    routes["DELETE /v1/agent-tokens/tok_agent"] = { status: 204 };
    expect((await gridx(["tokens", "revoke", "tok_api"])).stdout).toBe("revoked API token tok_api\n");
    expect((await gridx(["tokens", "revoke", "tok_agent"])).stdout).toBe("revoked agent token tok_agent\n");
    expect((await gridx(["tokens", "revoke", "tok_agent", "--agent"])).stdout).toBe("revoked agent token tok_agent\n");
    expect(seen.map((s) => `${s.method} ${s.path}`)).toEqual([
      "DELETE /v1/api-tokens/tok_api",
      "DELETE /v1/api-tokens/tok_agent",
      "DELETE /v1/agent-tokens/tok_agent",
      "DELETE /v1/agent-tokens/tok_agent",
    ]);
    await expect(gridx(["tokens", "revoke", "tok_none"])).rejects.toThrow(/no token tok_none that you may revoke: see `gridx tokens ls` and `gridx tokens ls --agent`/);
    routes["DELETE /v1/agent-tokens/tok_theirs"] = { status: 403, body: { error: { code: "forbidden", message: "a user token cannot use this route" } } };
    await expect(gridx(["tokens", "revoke", "tok_theirs"])).rejects.toThrow(/^no token tok_theirs that you may revoke: see `gridx tokens ls`$/);
  });
});

describe("login", () => {
  it("keeps the saved default project", async () => {
    routes["GET /v1/jobs"] = { status: 200, body: { jobs: [], next_cursor: null } };
    await gridx(["config", "set", "project", "lab"]);
    expect((await gridx(["login", url, "--token", "gxu_new"])).code).toBe(0);
    expect(JSON.parse(readFileSync(join(configHome, "gridx", "config.json"), "utf8"))).toEqual({ url, token: "gxu_new", project: "lab" });
    expect((await gridx(["config", "show"], { GRIDX_URL: "", GRIDX_TOKEN: "" })).stdout).toMatch(/^url +http:\/\/127\.0\.0\.1:\d+  \(from .*config\.json\)\ntoken +set  \(from .*\)\nproject +lab  \(from .*config\.json\)\n$/);
  });
});

describe("schedules", () => {
  const schedule = (over: Record<string, unknown> = {}) => ({
    id: "sch_1",
    project: "lab",
    name: "nightly",
    cron: "0 3 * * *",
    timezone: "Europe/Berlin",
    job: { kind: "python", python: { script: "print(1)" } },
    overlap: "skip",
    paused: false,
    next_run_at: new Date(Date.now() + 3_600_000).toISOString(),
    last_run_at: null,
    submitted_by: "ada",
    created_by: "ada",
    created_at: new Date().toISOString(),
    updated_at: new Date().toISOString(),
    ...over,
  });

  it("create sends the cron, zone and job file, in the configured project", async () => {
    const file = join(configHome, "job.json");
    writeFileSync(file, JSON.stringify({ kind: "python", python: { script: "print(1)" } }));
    routes["POST /v1/schedules"] = { status: 201, body: schedule() };
    const { code, stdout } = await gridx(["schedules", "create", "nightly", "--cron", "0 3 * * *", "--timezone", "Europe/Berlin", "--job", file], { GRIDX_PROJECT: "lab" });
    expect(code).toBe(0);
    expect(seen.at(-1)).toMatchObject({ method: "POST", path: "/v1/schedules", body: { name: "nightly", cron: "0 3 * * *", timezone: "Europe/Berlin", job: { kind: "python", project: "lab" } } });
    expect(stdout).toMatch(/^cron +0 3 \* \* \* \(Europe\/Berlin\)$/m);
    await expect(gridx(["schedules", "create", "nightly", "--job", file])).rejects.toThrow("--cron");
  });

  it("a bad cron names the flag", async () => {
    routes["POST /v1/schedules"] = { status: 400, body: { error: { code: "validation_failed", message: "cron: minute field 61 is out of 0-59", field: "cron" } } };
    const file = join(configHome, "job.json");
    writeFileSync(file, "{}");
    await expect(gridx(["schedules", "create", "x", "--cron", "61 * * * *", "--job", file])).rejects.toThrow(/--cron.*minute field 61 is out of 0-59|minute field 61 is out of 0-59.*--cron/);
  });

  it("list, show, pause, resume, runs and delete call their routes", async () => {
    routes["GET /v1/schedules"] = { status: 200, body: { schedules: [schedule()], next_cursor: null } };
    routes["GET /v1/schedules/sch_1"] = { status: 200, body: schedule() };
    routes["POST /v1/schedules/sch_1/pause"] = { status: 200, body: schedule({ paused: true, next_run_at: null }) };
    routes["POST /v1/schedules/sch_1/resume"] = { status: 200, body: schedule() };
    routes["GET /v1/schedules/sch_1/runs"] = { status: 200, body: { runs: [{ tick_at: new Date().toISOString(), outcome: "skipped", job_id: null, message: "job j_1 of this schedule has not finished (overlap: skip)", at: new Date().toISOString() }], next_cursor: null } };
    routes["DELETE /v1/schedules/sch_1"] = { status: 204 };
    expect((await gridx(["schedules", "list", "--project", "lab"])).stdout).toMatch(/^sch_1 +nightly +lab +0 3 \* \* \* \(Europe\/Berlin\)/m);
    expect(seen.at(-1)!.query).toEqual({ project: "lab" });
    expect((await gridx(["schedules", "show", "sch_1"])).stdout).toMatch(/^state +active$/m);
    expect((await gridx(["schedules", "pause", "sch_1"])).stdout).toMatch(/^state +paused/m);
    await gridx(["schedules", "resume", "sch_1"]);
    expect((await gridx(["schedules", "runs", "sch_1", "--limit", "5"])).stdout).toContain("skipped");
    expect(seen.at(-1)!.query).toEqual({ limit: "5" });
    await gridx(["schedules", "delete", "sch_1"]);
    expect(seen.map((s) => `${s.method} ${s.path}`)).toEqual([
      "GET /v1/schedules",
      "GET /v1/schedules/sch_1",
      "POST /v1/schedules/sch_1/pause",
      "POST /v1/schedules/sch_1/resume",
      "GET /v1/schedules/sch_1/runs",
      "DELETE /v1/schedules/sch_1",
    ]);
  });
});

describe("broadcast", () => {
  const part = (over: Record<string, unknown>) => ({ worker_id: "w_1", worker_name: "n1", job_id: "j_1", status: "completed", exit_code: 0, failure_reason: null, finished_at: new Date().toISOString(), ...over });
  const view = (workers: Record<string, unknown>[], counts: Record<string, number>, done = true) => ({
    id: "b_1",
    project: "lab",
    pool: "lab",
    name: null,
    submitted_by: "ada",
    created_at: new Date().toISOString(),
    workers,
    counts: { queued: 0, assigned: 0, running: 0, completed: 0, failed: 0, canceled: 0, ...counts },
    done,
  });

  it("sends the job without its pool, --worker names resolved in the pool, and prints one line per worker; a failure exits 1", async () => {
    routes["GET /v1/workers"] = { status: 200, body: { workers: [{ id: "w_3", name: "n3", pool: "lab" }] } };
    routes["POST /v1/pools/lab/broadcast"] = { status: 201, body: { id: "b_1", jobs: [{ worker: "w_3", job_id: "j_3" }, { worker: "w_1", job_id: "j_1" }] } };
    routes["GET /v1/broadcasts/b_1"] = { status: 200, body: view([part({}), part({ worker_id: "w_3", worker_name: "n3", job_id: "j_3", status: "failed", exit_code: 2, failure_reason: "exit_code" })], { completed: 1, failed: 1 }) };
    const res = await gridx(["broadcast", "--pool", "lab", "--project", "lab", "--worker", "n3", "--worker", "w_1", "--timeout", "1m", "--image", "img", "--", "hostname"]);
    expect(res.code).toBe(1);
    expect(seen.find((s) => s.method === "POST")).toMatchObject({
      path: "/v1/pools/lab/broadcast",
      body: { job: { kind: "command", command: { image: "img", argv: ["hostname"] }, project: "lab", limits: { timeout_s: 60 } }, workers: ["w_3", "w_1"] },
    });
    const lines = res.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^WORKER +ID +JOB +STATUS +EXIT$/);
    expect(lines[1]).toMatch(/^n1 +w_1 +j_1 +completed +0$/);
    expect(lines[2]).toMatch(/^n3 +w_3 +j_3 +failed +2$/);
    expect(lines[3]).toBe("2 workers: 1 completed, 1 failed");
    expect(res.stderr).toContain("[gridx: broadcast b_1: 2 jobs in pool lab (project lab); waiting for them to end]");
  });

  it("--no-wait prints the id and the jobs as they stand, --json the broadcast; all completed exits 0", async () => {
    routes["POST /v1/pools/lab/broadcast"] = { status: 201, body: { id: "b_1", jobs: [{ worker: "w_1", job_id: "j_1" }] } };
    routes["GET /v1/broadcasts/b_1"] = { status: 200, body: view([part({ status: "queued", exit_code: null, finished_at: null })], { queued: 1 }, false) };
    const res = await gridx(["broadcast", "--pool", "lab", "--no-wait", "--image", "img", "--", "true"]);
    expect(res.code).toBe(0);
    expect(seen.find((s) => s.method === "POST")!.body).toEqual({ job: { kind: "command", command: { image: "img", argv: ["true"] } } });
    expect(res.stdout.split("\n")[0]).toBe("b_1");
    expect(res.stdout).toContain("1 workers: 1 queued (not done)");
    expect(res.stderr).toContain("gridx broadcast show b_1 --wait");

    routes["GET /v1/broadcasts/b_1"] = { status: 200, body: view([part({})], { completed: 1 }) };
    const shown = await gridx(["broadcast", "show", "--json", "b_1"]);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: "b_1", done: true, counts: { completed: 1 } });
  });

  it("needs --pool, and names --worker for a refused worker", async () => {
    await expect(gridx(["broadcast", "--image", "img", "--", "true"])).rejects.toThrow("give the pool: gridx broadcast --pool P");
    routes["POST /v1/pools/lab/broadcast"] = { status: 400, body: { error: { code: "validation_failed", message: "workers.0: w_9 is not a worker of pool lab", field: "workers.0" } } };
    await expect(gridx(["broadcast", "--pool", "lab", "--worker", "w_9", "--image", "img", "--", "true"])).rejects.toThrow("workers.0: w_9 is not a worker of pool lab (set by --worker)");
  });
});
