import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { Agent, type AgentOptions } from "../../agent/src/agent.ts";
import { DockerEngine } from "../../agent/src/docker/engine.ts";
import { DockerRunner } from "../../agent/src/runner/docker-runner.ts";
import { DEFAULT_LOG_LIMITS } from "../../agent/src/runner/log-collector.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import type { JobRunner, RunHooks, RunOutcome, RunRequest } from "../../agent/src/runner/runner.ts";
import { AgentToCoordinator, decodeFrame, encode, envKey, JobRequest, repoKey, type CoordinatorToAgent, type UpgradeReport } from "../../protocol/index.ts";
import { hungEngine } from "../support/hung-engine.ts";

/** A coordinator stand-in: a real WebSocket server speaking the protocol. */
class FakeCoordinator {
  readonly wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  readonly received: AgentToCoordinator[] = [];
  readonly headers: string[] = [];
  socket: WebSocket | null = null;
  connections = 0;
  autoAckResults = true;
  /** The next job_log is lost with its connection: not recorded, and the socket is cut. */
  dropNextLog = false;

  constructor() {
    this.wss.on("connection", (ws, req) => {
      this.connections++;
      this.socket = ws;
      this.headers.push(req.headers.authorization ?? "");
      ws.on("message", (raw) => {
        const [d] = decodeFrame(raw.toString(), AgentToCoordinator);
        if (!d) throw new Error("empty frame");
        if (!d.ok) throw new Error(d.message);
        if (d.message.type === "job_log" && this.dropNextLog) {
          this.dropNextLog = false;
          ws.terminate();
          return;
        }
        this.received.push(d.message);
        if (d.message.type === "hello") {
          this.send({ type: "hello_ack", payload: { worker_id: "w_1", heartbeat_interval_s: 60, draining: false, batch_frames: false } });
          // As the coordinator does: each reported attempt resumes after the last batch it has.
          for (const ref of d.message.payload.running) this.send({ type: "log_resume", payload: { ...ref, after_seq: this.lastSeq(ref.job_id, ref.attempt) } });
        }
        if (d.message.type === "job_result" && this.autoAckResults) this.send({ type: "result_ack", payload: { job_id: d.message.payload.job_id, attempt: d.message.payload.attempt } });
      });
    });
  }

  lastSeq(jobId: string, attempt: number): number {
    const seqs = this.received.flatMap((m) => (m.type === "job_log" && m.payload.job_id === jobId && m.payload.attempt === attempt ? [m.payload.seq] : []));
    return Math.max(-1, ...seqs);
  }

  get url() {
    return `http://127.0.0.1:${(this.wss.address() as AddressInfo).port}`;
  }

  send(msg: CoordinatorToAgent) {
    this.socket!.send(encode(msg));
  }

  async waitFor<T extends AgentToCoordinator["type"]>(type: T, pred: (m: Extract<AgentToCoordinator, { type: T }>) => boolean = () => true, timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const hit = this.received.find((m) => m.type === type && pred(m as Extract<AgentToCoordinator, { type: T }>));
      if (hit) return hit as Extract<AgentToCoordinator, { type: T }>;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no ${type}; got ${this.received.map((m) => m.type).join(",")}`);
  }

  close() {
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
  }
}

/** A runner that does what the test says, when it says. */
class ScriptedRunner implements JobRunner {
  readonly runs: { req: RunRequest; hooks: RunHooks; stop: AbortSignal; finish: (o: RunOutcome) => void; fail: (err: Error) => void }[] = [];
  async run(req: RunRequest, hooks: RunHooks, stop: AbortSignal): Promise<RunOutcome> {
    return new Promise((finish, fail) => {
      this.runs.push({ req, hooks, stop, finish, fail });
      stop.addEventListener("abort", () => finish({ exit_code: 143, failure_reason: "canceled_by_worker", message: `stopped: ${String(stop.reason)}` }));
    });
  }
  cleanupLeftovers = async () => 0;
  start = () => undefined;
  close = async () => undefined;
  missingImages = async () => [];
  warm = async () => ({ envs: [], repos: [] });
}

const spec = JobRequest.parse({ kind: "python", python: { script: "print(1)" } });
const caps = { cpu_cores: 2, memory_mb: 1024, gpus: [], nvidia_runtime: false, labels: {}, os: "Linux", arch: "x64", wsl: false, runtimes: ["runc" as const], egress: false, ports: false };

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** An agent on `runner`, connected to a fresh coordinator stand-in. */
async function connect<R extends JobRunner>(opts: Partial<AgentOptions>, runner: R) {
  const coord = new FakeCoordinator();
  await once(coord.wss, "listening");
  const agent = new Agent({ url: coord.url, token: "gxa_secret-token", name: "n1", slots: 1, version: "9.9.9", caps, connection: { backoff: { baseMs: 20, maxMs: 100 } }, ...opts }, runner, silentLogger);
  await agent.start();
  await coord.waitFor("hello");
  cleanup.push(() => coord.close(), () => agent.close(0));
  return { coord, runner, agent };
}

const setup = (opts: Partial<AgentOptions> = {}) => connect(opts, new ScriptedRunner());

const until = async (pred: () => boolean, timeoutMs = 3000) => {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("Agent", () => {
  it("says hello with its name, slots, caps and version, sending the token as a header", async () => {
    const { coord } = await setup({ slots: 3 });
    const hello = await coord.waitFor("hello");
    expect(hello.payload).toEqual({ agent_version: "9.9.9", name: "n1", slots: 3, caps, running: [], warm: { envs: [], repos: [] }, batch_frames: true, draining: false });
    expect(coord.headers[0]).toBe("Bearer gxa_secret-token");
  });

  it("says at once that a repo job's environment is coming to it, and passes the credentials to the runner only", async () => {
    const { coord, runner } = await setup();
    const repo = { code_repo_url: "https://h/code.git", code_commit_id: "main", env_repo_url: "https://h/env.git", env_commit_id: "v1" };
    const repoSpec = JobRequest.parse({ kind: "repo", repo, command: ["python3", "main.py"] });
    coord.send({ type: "assign_job", payload: { job_id: "j_r", attempt: 1, spec: repoSpec, gpu_indices: [], inputs: [], credentials: { code: "tok" } } });
    const warm = await coord.waitFor("warm_cache");
    expect(warm.payload).toEqual({ envs: [envKey({ ...repo, dockerfile_path: "Dockerfile" })], repos: [repoKey(repo.code_repo_url)] });
    await until(() => runner.runs.length === 1);
    expect(runner.runs[0]!.req.credentials).toEqual({ code: "tok" });
    const resolved = { code_commit_id: "c".repeat(40), env_commit_id: "e".repeat(40), image: "gridx-env:x" };
    runner.runs[0]!.hooks.started(resolved);
    expect((await coord.waitFor("job_started")).payload).toEqual({ job_id: "j_r", attempt: 1, resolved });
    runner.runs[0]!.finish({ exit_code: 0, failure_reason: null, message: null, resolved });
    expect((await coord.waitFor("job_result")).payload).toMatchObject({ job_id: "j_r", resolved });
  });

  it("runs an assignment: started, logs in sequence, result", async () => {
    const { coord, runner } = await setup();
    coord.send({ type: "assign_job", payload: { job_id: "j_1", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    const run = runner.runs[0]!;
    run.hooks.started();
    run.hooks.output("stdout", Buffer.from("line one\nline "));
    run.hooks.output("stdout", Buffer.from("two\n"));
    run.finish({ exit_code: 0, failure_reason: null, message: null });
    const result = await coord.waitFor("job_result");
    expect(result.payload).toEqual({ job_id: "j_1", attempt: 1, exit_code: 0, failure_reason: null, message: null });
    const logs = coord.received.filter((m) => m.type === "job_log");
    expect(logs.flatMap((l) => (l.type === "job_log" ? l.payload.lines.map((x) => x.text) : []))).toEqual(["line one", "line two"]);
    expect(coord.received.map((m) => m.type).indexOf("job_started")).toBeLessThan(coord.received.map((m) => m.type).indexOf("job_result"));
  });

  it("stops a job on cancel_job", async () => {
    const { coord, runner } = await setup();
    coord.send({ type: "assign_job", payload: { job_id: "j_2", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    coord.send({ type: "cancel_job", payload: { job_id: "j_2", attempt: 1, reason: "user" } });
    await until(() => runner.runs[0]!.stop.aborted);
    expect(runner.runs[0]!.stop.reason).toBe("user");
    expect((await coord.waitFor("job_result")).payload.message).toMatch(/user/);
  });

  it("stops every running job when told its lease lapsed, with the lease as the reason", async () => {
    const { coord, runner, agent } = await setup({ slots: 2 });
    for (const id of ["j_l1", "j_l2"]) coord.send({ type: "assign_job", payload: { job_id: id, attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 2);
    agent.stopAll("lease");
    expect(runner.runs.map((r) => r.stop.reason)).toEqual(["lease", "lease"]);
    await coord.waitFor("job_result", (m) => m.payload.job_id === "j_l2");
  });

  it("ignores a re-sent assignment it already runs, and refuses one beyond its slots", async () => {
    const { coord, runner } = await setup({ slots: 1 });
    const assign = { type: "assign_job" as const, payload: { job_id: "j_3", attempt: 1, spec, gpu_indices: [], inputs: [] } };
    coord.send(assign);
    coord.send(assign);
    coord.send({ type: "assign_job", payload: { job_id: "j_4", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    const refused = await coord.waitFor("job_result", (m) => m.payload.job_id === "j_4");
    expect(refused.payload).toMatchObject({ failure_reason: "canceled_by_worker", message: expect.stringMatching(/slot/) });
    expect(runner.runs).toHaveLength(1);
  });

  it("reconnects after the line drops, reports what it runs, and re-sends an unacknowledged result", async () => {
    const { coord, runner } = await setup();
    coord.autoAckResults = false;
    coord.send({ type: "assign_job", payload: { job_id: "j_5", attempt: 2, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    runner.runs[0]!.finish({ exit_code: 1, failure_reason: "exit_code", message: "exited 1" });
    await coord.waitFor("job_result");
    coord.received.length = 0;
    coord.socket!.terminate();
    const hello = await coord.waitFor("hello");
    expect(hello.payload.running).toEqual([{ job_id: "j_5", attempt: 2 }]);
    const again = await coord.waitFor("job_result");
    expect(again.payload).toMatchObject({ job_id: "j_5", attempt: 2, exit_code: 1 });
    expect(coord.connections).toBe(2);
    coord.send({ type: "result_ack", payload: { job_id: "j_5", attempt: 2 } });
    await new Promise((r) => setTimeout(r, 50));
    coord.received.length = 0;
    coord.socket!.terminate();
    expect((await coord.waitFor("hello")).payload.running).toEqual([]);
  });

  it("keeps log batches produced while disconnected and sends them after the next hello", async () => {
    const { coord, runner } = await setup();
    coord.send({ type: "assign_job", payload: { job_id: "j_6", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    coord.socket!.terminate();
    await until(() => coord.socket!.readyState !== 1);
    const before = coord.received.length;
    runner.runs[0]!.hooks.output("stdout", Buffer.from("while away\n"));
    const log = await coord.waitFor("job_log", (m) => m.payload.lines[0]?.text === "while away");
    const types = coord.received.slice(before).map((m) => m.type);
    expect(types.indexOf("hello")).toBeGreaterThanOrEqual(0);
    expect(types.indexOf("hello")).toBeLessThan(coord.received.slice(before).indexOf(log));
  });

  it("re-sends a log batch lost with its connection after the next hello, before the result", async () => {
    const { coord, runner } = await setup();
    coord.send({ type: "assign_job", payload: { job_id: "j_lost", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    const run = runner.runs[0]!;
    run.hooks.output("stdout", Buffer.from("one\n"));
    await coord.waitFor("job_log", (m) => m.payload.seq === 0);
    coord.dropNextLog = true;
    run.hooks.output("stdout", Buffer.from("two\n"));
    await until(() => !coord.dropNextLog);
    run.hooks.output("stdout", Buffer.from("three\n"));
    run.finish({ exit_code: 0, failure_reason: null, message: null });
    await coord.waitFor("job_result");
    const logs = coord.received.filter((m) => m.type === "job_log");
    expect(logs.map((m) => [m.payload.seq, m.payload.lines.map((l) => l.text)])).toEqual([
      [0, ["one"]],
      [1, ["two"]],
      [2, ["three"]],
    ]);
    const types = coord.received.map((m) => m.type);
    expect(types.lastIndexOf("job_log")).toBeLessThan(types.indexOf("job_result"));
  });

  it("drains on close: tells the coordinator, waits for jobs, then stops them past the grace", async () => {
    const { coord, runner, agent } = await setup();
    coord.send({ type: "assign_job", payload: { job_id: "j_7", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    const closing = agent.close(100);
    await coord.waitFor("draining");
    await closing;
    expect(runner.runs[0]!.stop.reason).toBe("drain");
    expect((await coord.waitFor("job_result")).payload.job_id).toBe("j_7");
  });

  it("signals congestion while output cannot get out, and loses none of it", async () => {
    const { coord, runner } = await setup({ logLimits: { ...DEFAULT_LOG_LIMITS, highWaterBytes: 4096, lowWaterBytes: 1024 } });
    coord.send({ type: "assign_job", payload: { job_id: "j_8", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    const hooks = runner.runs[0]!.hooks;
    expect(hooks.congested()).toBe(false);
    // Refuse reconnects for a while: the agent keeps what it cannot send.
    coord.wss.removeAllListeners("connection");
    coord.wss.on("connection", (ws) => ws.terminate());
    coord.socket!.terminate();
    await until(() => coord.socket!.readyState !== 1);
    for (let i = 0; i < 200; i++) hooks.output("stdout", Buffer.from(`line ${i} ${"z".repeat(50)}\n`));
    await until(() => hooks.congested());
    // Let it back in: the backlog drains and every line arrives, in order.
    const fresh = new FakeCoordinator();
    await once(fresh.wss, "listening");
    cleanup.push(() => fresh.close());
    coord.wss.removeAllListeners("connection");
    coord.wss.on("connection", (ws, req) => fresh.wss.emit("connection", ws, req));
    await until(() => !hooks.congested(), 5000);
    await until(() => fresh.received.filter((m) => m.type === "job_log").flatMap((m) => (m.type === "job_log" ? m.payload.lines : [])).length === 200, 5000);
    const texts = fresh.received.flatMap((m) => (m.type === "job_log" ? m.payload.lines.map((l) => l.text) : []));
    expect(texts).toEqual(Array.from({ length: 200 }, (_, i) => `line ${i} ${"z".repeat(50)}`));
  });
  it("caps a job's log at the assignment's log_max_bytes and sends the count marker last, then the result", async () => {
    const { coord, runner } = await setup();
    coord.send({ type: "assign_job", payload: { job_id: "j_cap", attempt: 1, spec, gpu_indices: [], inputs: [], log_max_bytes: 12 } });
    await until(() => runner.runs.length === 1);
    expect(runner.runs[0]!.req.logMaxBytes).toBe(12);
    for (let i = 0; i < 5; i++) runner.runs[0]!.hooks.output("stdout", Buffer.from(`line ${i}\n`));
    runner.runs[0]!.finish({ exit_code: 1, failure_reason: "exit_code", message: "exit 1" });
    await coord.waitFor("job_result", (m) => m.payload.job_id === "j_cap");
    const after = coord.received.filter((m) => m.type === "job_log" || m.type === "job_result");
    expect(after.at(-1)!.type).toBe("job_result");
    const texts = after.flatMap((m) => (m.type === "job_log" ? m.payload.lines.map((l) => l.text) : []));
    expect(texts).toEqual([
      "line 0",
      "[gridx: log cap LOG_MAX_BYTES (12 B) reached: further lines are counted, not kept]",
      "[gridx: exit_code: exit 1]",
      "[gridx: 4 lines / 28 B dropped: log cap LOG_MAX_BYTES]",
    ]);
  });

  it("says it accepted an assignment before the runner prepares it, and again for a re-sent one it runs", async () => {
    const { coord, runner } = await setup();
    const assign = { type: "assign_job" as const, payload: { job_id: "j_a", attempt: 3, spec, gpu_indices: [], inputs: [] } };
    coord.send(assign);
    expect((await coord.waitFor("job_accepted")).payload).toEqual({ job_id: "j_a", attempt: 3 });
    await until(() => runner.runs.length === 1);
    runner.runs[0]!.hooks.started();
    await coord.waitFor("job_started");
    const types = coord.received.map((m) => m.type);
    expect(types.indexOf("job_accepted")).toBeLessThan(types.indexOf("job_started"));
    coord.send(assign);
    await until(() => coord.received.filter((m) => m.type === "job_accepted").length === 2);
    expect(runner.runs).toHaveLength(1);
  });

  it("reports a job whose runner rejects as internal, with the error, and goes on running jobs", async () => {
    const { coord, runner } = await setup();
    coord.send({ type: "assign_job", payload: { job_id: "j_bad", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    runner.runs[0]!.fail(new Error("the sandbox would not close"));
    const failed = await coord.waitFor("job_result", (m) => m.payload.job_id === "j_bad");
    expect(failed.payload).toMatchObject({ exit_code: null, failure_reason: "internal", message: expect.stringContaining("the sandbox would not close") });
    const logged = coord.received.flatMap((m) => (m.type === "job_log" && m.payload.job_id === "j_bad" ? m.payload.lines.map((l) => l.text) : []));
    expect(logged).toContainEqual(expect.stringContaining("internal: the agent failed while running the job"));
    coord.send({ type: "assign_job", payload: { job_id: "j_next", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 2);
    runner.runs[1]!.finish({ exit_code: 0, failure_reason: null, message: null });
    expect((await coord.waitFor("job_result", (m) => m.payload.job_id === "j_next")).payload.failure_reason).toBeNull();
  });

  it("sends an unacknowledged result again on its timer, without a reconnect, until it is acknowledged", async () => {
    const { coord, runner } = await setup({ resultResendMs: 50 });
    coord.autoAckResults = false;
    coord.send({ type: "assign_job", payload: { job_id: "j_re", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    runner.runs[0]!.finish({ exit_code: 0, failure_reason: null, message: null });
    const results = () => coord.received.filter((m) => m.type === "job_result");
    await until(() => results().length >= 3);
    expect(new Set(results().map((m) => JSON.stringify(m.payload))).size).toBe(1);
    expect(coord.connections).toBe(1);
    coord.send({ type: "result_ack", payload: { job_id: "j_re", attempt: 1 } });
    coord.autoAckResults = true;
    // Messages are handled in order: once the next assignment is accepted, so is the ack.
    coord.send({ type: "assign_job", payload: { job_id: "j_after", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await coord.waitFor("job_accepted", (m) => m.payload.job_id === "j_after");
    coord.received.length = 0;
    coord.socket!.terminate();
    expect((await coord.waitFor("hello")).payload.running).toEqual([{ job_id: "j_after", attempt: 1 }]);
  });

  it("starts even when cleaning up after an earlier run fails, and closes every part even when the runner cannot", async () => {
    const runner = new ScriptedRunner();
    runner.cleanupLeftovers = () => Promise.reject(new Error("the Docker engine did not answer GET /containers/json within 30s"));
    runner.close = () => Promise.reject(new Error("a sandbox would not go"));
    const { coord, agent } = await connect({}, runner);
    coord.send({ type: "assign_job", payload: { job_id: "j_c", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    const closed = once(coord.socket!, "close");
    await agent.close(0);
    expect(runner.runs[0]!.stop.reason).toBe("drain");
    expect((await coord.waitFor("job_result")).payload.job_id).toBe("j_c");
    const [code] = (await closed) as [number];
    expect(code).toBe(1000);
  });
  it("stays up on a Docker engine that stops answering: each job fails internal, naming the call", async () => {
    // The engine tells its version, its info and knows the image, then hangs.
    const engine = await hungEngine((path, res) => {
      if (path === "/version") res.end('{"ApiVersion":"1.41"}');
      else if (path === "/info" || path.startsWith("/images/")) res.end("{}");
      else return false;
      return true;
    });
    cleanup.push(() => engine.close());
    const docker = new DockerEngine({ socketPath: engine.socketPath }, { callTimeoutMs: 100 });
    const stateDir = mkdtempSync(join(tmpdir(), "gridx-agent-hung-"));
    const runner = new DockerRunner(docker, { stateDir, agentName: "n1", instance: "ab".repeat(16), images: { python: "gridx/python:latest" }, stopGraceS: 1, tmpfsMb: 16, outputCapBytes: 1 << 20, allowedImages: [] }, silentLogger);
    const { coord } = await connect({}, runner);
    for (const job_id of ["j_h1", "j_h2"]) {
      coord.send({ type: "assign_job", payload: { job_id, attempt: 1, spec, gpu_indices: [], inputs: [] } });
      const result = await coord.waitFor("job_result", (m) => m.payload.job_id === job_id);
      expect(result.payload).toMatchObject({ exit_code: null, failure_reason: "internal", message: "the Docker engine did not answer POST /containers/create within 0.1s" });
    }
  });
});

/** Upgrade steps that record what the agent asked, fetching as the test says. */
class FakeUpgrades {
  readonly calls: string[] = [];
  fetchError: Error | null = null;
  async fetch(order: { version: string }) {
    this.calls.push(`fetch ${order.version}`);
    if (this.fetchError) throw this.fetchError;
  }
  async install(order: { version: string }) {
    this.calls.push(`install ${order.version}`);
  }
  async connected(): Promise<UpgradeReport | null> {
    this.calls.push("connected");
    return null;
  }
}

describe("Agent upgrades", () => {
  const order = { version: "10.0.0", sha256: "a".repeat(64), size: 10, url: "http://127.0.0.1:1/bundle" };
  const statuses = (coord: FakeCoordinator) => coord.received.flatMap((m) => (m.type === "upgrade_status" ? [m.payload.state] : []));

  it("fetches first, then drains, waits for its running job and its ack, installs, and ends for a restart", async () => {
    const upgrades = new FakeUpgrades();
    const { coord, runner } = await connect({ upgrades }, new ScriptedRunner());
    await until(() => upgrades.calls.includes("connected"));
    coord.send({ type: "assign_job", payload: { job_id: "j_up", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    coord.send({ type: "upgrade", payload: order });
    await coord.waitFor("upgrade_status", (m) => m.payload.state === "draining");
    await coord.waitFor("draining");
    expect(upgrades.calls).toEqual(["connected", "fetch 10.0.0"]);
    // A job offered while draining is turned down, not taken.
    coord.send({ type: "assign_job", payload: { job_id: "j_late", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    expect((await coord.waitFor("job_result", (m) => m.payload.job_id === "j_late")).payload.failure_reason).toBe("canceled_by_worker");
    runner.runs[0]!.finish({ exit_code: 0, failure_reason: null, message: null });
    await coord.waitFor("upgrade_status", (m) => m.payload.state === "restarting");
    expect(upgrades.calls).toEqual(["connected", "fetch 10.0.0", "install 10.0.0"]);
    expect(statuses(coord)).toEqual(["downloading", "draining", "restarting"]);
    expect((await coord.waitFor("job_result", (m) => m.payload.job_id === "j_up")).payload.exit_code).toBe(0);
  });

  it("refuses a bundle the fetch rejected without draining, and keeps taking jobs", async () => {
    const upgrades = new FakeUpgrades();
    upgrades.fetchError = new Error("agent bundle 10.0.0: its SHA-256 is b…, the control plane holds a…; refused, staying on 9.9.9");
    const { coord, runner } = await connect({ upgrades }, new ScriptedRunner());
    coord.send({ type: "upgrade", payload: order });
    const failed = await coord.waitFor("upgrade_status", (m) => m.payload.state === "failed");
    expect(failed.payload.reason).toContain("refused, staying on 9.9.9");
    expect(coord.received.some((m) => m.type === "draining")).toBe(false);
    coord.send({ type: "assign_job", payload: { job_id: "j_after", attempt: 1, spec, gpu_indices: [], inputs: [] } });
    await until(() => runner.runs.length === 1);
    expect(upgrades.calls).not.toContain("install 10.0.0");
  });

  it("answers an order failed when it has no way to upgrade (--once)", async () => {
    const { coord } = await setup({ once: true });
    coord.send({ type: "upgrade", payload: order });
    expect((await coord.waitFor("upgrade_status")).payload).toEqual({ version: "10.0.0", state: "failed", reason: "a --once agent does not upgrade itself" });
  });

  it("tells a rollback the launcher made after its hello is accepted", async () => {
    const upgrades = new FakeUpgrades();
    upgrades.connected = async () => ({ version: "10.0.0", state: "rolled_back" as const, reason: "exited with status 1" });
    const { coord } = await connect({ upgrades }, new ScriptedRunner());
    expect((await coord.waitFor("upgrade_status")).payload).toEqual({ version: "10.0.0", state: "rolled_back", reason: "exited with status 1" });
  });
});
