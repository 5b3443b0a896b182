import { describe, expect, it } from "vitest";
import { JobRequest } from "../../protocol/index.ts";
import { UsageError } from "../../cli/src/errors.ts";
import { buildJobRequest, type BuildContext } from "../../cli/src/job-request.ts";

const ctx = (files: Record<string, string> = { "job.py": "print(1)\n" }, env: Record<string, string> = {}): BuildContext => ({
  readScript: (path) => {
    const text = files[path];
    if (text === undefined) throw new UsageError(`cannot read the script ${path}: ENOENT`);
    return text;
  },
  env,
});

describe("buildJobRequest", () => {
  it("makes a python job of a script file and its arguments, leaving defaults to the server", () => {
    const body = buildJobRequest({}, ["job.py", "--lr", "0.1"], ctx());
    expect(body).toEqual({ kind: "python", python: { script: "print(1)\n", args: ["--lr", "0.1"] } });
    expect(JobRequest.safeParse(body).success).toBe(true);
  });

  it("reads the script from stdin for -", () => {
    expect(buildJobRequest({}, ["-"], ctx({ "-": "print(2)" }))).toMatchObject({ python: { script: "print(2)", args: [] } });
  });

  it("maps every job flag to its field", () => {
    const body = buildJobRequest(
      {
        pool: "gpu",
        cpus: "0.5",
        memory: "2g",
        gpus: "1",
        pids: "512",
        timeout: "1h30m",
        priority: "-5",
        retries: "0",
        label: ["zone=lab", "gpu=a100"],
        env: ["SEED=1", "HOME"],
        secret: ["API_KEY=api-key"],
        input: ["ds_01abc:data/train.bin", "ds_02def:x"],
      },
      ["job.py"],
      ctx(undefined, { HOME: "/home/me" }),
    );
    expect(body).toEqual({
      kind: "python",
      python: { script: "print(1)\n", args: [] },
      limits: { timeout_s: 5400, memory_mb: 2048, cpus: 0.5, pids: 512 },
      requirements: { gpus: 1, labels: { zone: "lab", gpu: "a100" } },
      pool: "gpu",
      priority: -5,
      max_retries: 0,
      env: { SEED: "1", HOME: "/home/me" },
      secrets: { API_KEY: "api-key" },
      inputs: [
        { dataset: "ds_01abc", path: "data/train.bin" },
        { dataset: "ds_02def", path: "x" },
      ],
    });
    expect(JobRequest.safeParse(body).success).toBe(true);
  });

  it("makes a command job of --image and the argv after --", () => {
    const body = buildJobRequest({ image: "gridx/python:latest", timeout: "90" }, ["python3", "-c", "print(1)"], ctx());
    expect(body).toEqual({ kind: "command", command: { image: "gridx/python:latest", argv: ["python3", "-c", "print(1)"] }, limits: { timeout_s: 90 } });
    expect(JobRequest.safeParse(body).success).toBe(true);
  });

  it("chooses the sandbox with --runtime and --network, and a registry login with --registry-credentials", () => {
    const body = buildJobRequest({ image: "ghcr.io/acme/tool:1", runtime: "gvisor", network: "none", "registry-credentials": "ghcr" }, ["tool"], ctx());
    expect(body).toEqual({ kind: "command", command: { image: "ghcr.io/acme/tool:1", argv: ["tool"], registry_credentials: "ghcr" }, runtime: "gvisor", network: "none" });
    expect(JobRequest.safeParse(body).success).toBe(true);
    expect(buildJobRequest({ network: "egress" }, ["job.py"], ctx())).toMatchObject({ network: "egress" });
    expect(() => buildJobRequest({ runtime: "kata" }, ["job.py"], ctx())).toThrow('--runtime takes runc or gvisor, not "kata"');
    expect(() => buildJobRequest({ network: "host" }, ["job.py"], ctx())).toThrow("--network takes none or egress");
    expect(() => buildJobRequest({ "registry-credentials": "ghcr" }, ["job.py"], ctx())).toThrow("--registry-credentials goes with --image");
  });

  it("makes a repo job of the repo flags and the command after --", () => {
    const body = buildJobRequest(
      {
        "code-repo": "https://git.example.com/lab/model.git",
        "code-commit": "4f2a9c1",
        "env-repo": "https://git.example.com/lab/env.git",
        "env-commit": "v3",
        dockerfile: "docker/Dockerfile",
        pool: "gpu",
      },
      ["python", "train.py", "--epochs", "3"],
      ctx(),
    );
    expect(body).toEqual({
      kind: "repo",
      repo: {
        code_repo_url: "https://git.example.com/lab/model.git",
        code_commit_id: "4f2a9c1",
        env_repo_url: "https://git.example.com/lab/env.git",
        env_commit_id: "v3",
        dockerfile_path: "docker/Dockerfile",
      },
      command: ["python", "train.py", "--epochs", "3"],
      pool: "gpu",
    });
    expect(JobRequest.safeParse(body).success).toBe(true);
  });

  it("leaves out the optional repo fields that were not given, and names a project's credentials", () => {
    const required = { "code-repo": "https://x/r.git", "code-commit": "main", "env-repo": "https://x/env.git", "env-commit": "v1" };
    expect(buildJobRequest(required, ["make"], ctx())).toEqual({
      kind: "repo",
      repo: { code_repo_url: "https://x/r.git", code_commit_id: "main", env_repo_url: "https://x/env.git", env_commit_id: "v1" },
      command: ["make"],
    });
    // The credentials are the job's project's secrets: --project names the job's project, not the repo's.
    const withSecret = buildJobRequest({ ...required, project: "lab", "code-credentials": "gh" }, ["make"], ctx());
    expect(withSecret).toMatchObject({ project: "lab", repo: { code_credentials: "gh" } });
    expect((withSecret as { repo: object }).repo).not.toHaveProperty("project");
    expect(JobRequest.safeParse(withSecret).success).toBe(true);
  });

  it("puts --project, --name and each --tag in the body, for every kind of job", () => {
    const flags = { project: "lab", name: "lr sweep, run 3", tag: ["sweep=lr", "owner=ada", "note=a=b"] };
    const python = buildJobRequest(flags, ["job.py"], ctx());
    expect(python).toEqual({ kind: "python", python: { script: "print(1)\n", args: [] }, project: "lab", name: "lr sweep, run 3", tags: ["sweep=lr", "owner=ada", "note=a=b"] });
    expect(JobRequest.safeParse(python).success).toBe(true);
    const command = buildJobRequest({ ...flags, image: "img" }, ["true"], ctx());
    expect(command).toMatchObject({ kind: "command", project: "lab", name: "lr sweep, run 3", tags: ["sweep=lr", "owner=ada", "note=a=b"] });
    // Only --project, of the job's own fields, does not make a job a repo job.
    expect(buildJobRequest({ project: "lab" }, ["job.py"], ctx())).toEqual({ kind: "python", python: { script: "print(1)\n", args: [] }, project: "lab" });
  });

  it("sets the workflow fields: an array, dependencies, a retry policy, a queue ttl and artifact inputs", () => {
    const body = buildJobRequest(
      {
        array: "10",
        after: ["j_01abc", "a_01def:finished", "j_02ghi:completed"],
        "retry-on": "exit_code, oom",
        "retry-exit-codes": "3,4",
        retries: "3",
        "retry-backoff": "1m",
        "queue-ttl": "2h",
        input: ["ds_01abc:data/{index}.bin"],
        artifact: ["j_01abc:out/model.pt", "j_01abc:part-{index}.csv:parts/mine.csv"],
      },
      ["job.py"],
      ctx(),
    );
    expect(body).toEqual({
      kind: "python",
      python: { script: "print(1)\n", args: [] },
      inputs: [
        { dataset: "ds_01abc", path: "data/{index}.bin" },
        { artifact: { job: "j_01abc", name: "out/model.pt" }, path: "out/model.pt" },
        { artifact: { job: "j_01abc", name: "part-{index}.csv" }, path: "parts/mine.csv" },
      ],
      array: { count: 10 },
      depends_on: [
        { job: "j_01abc", condition: "completed" },
        { job: "a_01def", condition: "finished" },
        { job: "j_02ghi", condition: "completed" },
      ],
      retry: { on: ["exit_code", "oom"], exit_codes: [3, 4], max: 3, backoff_s: 60 },
      queue_ttl_s: 7200,
    });
    expect(JobRequest.safeParse(body).success).toBe(true);
  });

  it("pins a job to a worker with --worker", () => {
    const body = buildJobRequest({ pool: "lab", worker: "w_01abc" }, ["job.py"], ctx());
    expect(body).toMatchObject({ pool: "lab", worker: "w_01abc" });
    expect(JobRequest.safeParse(body).success).toBe(true);
  });

  it("keeps --retries the lost-worker max_retries without --retry-on, and the policy's max with it", () => {
    expect(buildJobRequest({ retries: "4" }, ["job.py"], ctx())).toMatchObject({ max_retries: 4 });
    expect(buildJobRequest({ retries: "4" }, ["job.py"], ctx())).not.toHaveProperty("retry");
    const policy = buildJobRequest({ retries: "4", "retry-on": "worker_lost" }, ["job.py"], ctx());
    expect(policy).toMatchObject({ retry: { on: ["worker_lost"], max: 4 } });
    expect(policy).not.toHaveProperty("max_retries");
  });

  it.each([
    [{ array: "0" }, /--array takes a whole number/],
    [{ array: "many" }, /--array takes a whole number/],
    [{ after: ["j_1:done"] }, /--after takes ID or ID:finished/],
    [{ after: [":finished"] }, /--after takes ID or ID:finished/],
    [{ "retry-on": "crash" }, /--retry-on takes exit_code, oom, timeout, worker_lost/],
    [{ "retry-on": "oom", "retry-exit-codes": "3" }, /--retry-exit-codes needs exit_code in --retry-on/],
    [{ "retry-on": "exit_code", "retry-exit-codes": "3,x" }, /--retry-exit-codes takes a whole number from 1 to 255/],
    [{ "retry-backoff": "10s" }, /--retry-backoff goes with --retry-on/],
    [{ "retry-exit-codes": "3" }, /--retry-exit-codes goes with --retry-on/],
    [{ "retry-on": "oom", retries: "lots" }, /--retries takes a whole number/],
    [{ "queue-ttl": "soon" }, /--queue-ttl takes a duration/],
    [{ artifact: ["j_1"] }, /--artifact takes JOB:NAME\[:PATH\]/],
    [{ artifact: ["j_1:a:b:c"] }, /--artifact takes JOB:NAME\[:PATH\]/],
  ] as const)("refuses the workflow flags %j, naming the flag", (flags, message) => {
    const build = () => buildJobRequest(flags as Parameters<typeof buildJobRequest>[0], ["job.py"], ctx());
    expect(build).toThrow(UsageError);
    expect(build).toThrow(message);
  });

  it.each([
    [{}, [], /give a Python script/],
    [{}, ["missing.py"], /cannot read the script missing.py/],
    [{ image: "img" }, [], /--image needs the command/],
    [{ image: "img", "code-repo": "x" }, ["a"], /do not go together/],
    [{ "code-repo": "x" }, ["a"], /missing: --code-commit, --env-repo, --env-commit/],
    [{ "env-repo": "x" }, ["a"], /missing: --code-repo, --code-commit, --env-commit/],
    [{ "code-repo": "x", "code-commit": "y", "env-repo": "z", "env-commit": "w" }, [], /needs its command after --/],
    [{ input: ["ds_1"] }, ["job.py"], /--input takes DATASET:PATH/],
    [{ input: [":path"] }, ["job.py"], /--input takes DATASET:PATH/],
    [{ cpus: "zero" }, ["job.py"], /--cpus takes a positive number/],
    [{ gpus: "one" }, ["job.py"], /--gpus takes a whole number/],
    [{ memory: "big" }, ["job.py"], /--memory takes a size/],
    [{ label: ["zone"] }, ["job.py"], /--label takes KEY=VALUE/],
    [{ tag: ["sweep"] }, ["job.py"], /--tag takes KEY=VALUE/],
    [{ tag: ["=lr"] }, ["job.py"], /--tag takes KEY=VALUE/],
  ] as const)("refuses %j %j as a usage error", (flags, program, message) => {
    const build = () => buildJobRequest(flags as Parameters<typeof buildJobRequest>[0], [...program], ctx());
    expect(build).toThrow(UsageError);
    expect(build).toThrow(message);
  });
});
