import { describe, expect, it } from "vitest";
import {
  AgentToCoordinator,
  CAPS_LIMITS,
  CoordinatorToAgent,
  decodeFrame,
  encode,
  FRAME_LIMITS,
  HEARTBEAT_ACK_FRAME,
  HEARTBEAT_FRAME,
  JobRequest,
  LOG_LIMITS,
  packFrames,
  PROTOCOL_VERSION,
  utf8Length,
} from "../../protocol/index.ts";

/** A single-message frame's one result. */
function decode<S extends Parameters<typeof decodeFrame>[1]>(raw: string, schema: S) {
  const results = decodeFrame(raw, schema);
  expect(results).toHaveLength(1);
  return results[0]!;
}

const spec = JobRequest.parse({ kind: "python", python: { script: "print(1)" } });
const caps = { cpu_cores: 2, memory_mb: 1024, gpus: [{ index: 0, model: "T4", memory_mb: 15000 }], nvidia_runtime: true, labels: { a: "b" }, os: "Linux", arch: "x64", wsl: false, runtimes: ["runc" as const], egress: false, ports: false };

const agentMessages: AgentToCoordinator[] = [
  { type: "hello", payload: { agent_version: "1.0.0", name: "n", slots: 2, caps, running: [{ job_id: "j_1", attempt: 2 }], warm: { envs: ["0123456789abcdef"], repos: [] }, batch_frames: true } },
  { type: "heartbeat", payload: {} },
  { type: "warm_cache", payload: { envs: [], repos: ["fedcba9876543210"] } },
  { type: "job_started", payload: { job_id: "j_1", attempt: 1 } },
  { type: "job_log", payload: { job_id: "j_1", attempt: 1, seq: 0, lines: [{ stream: "stdout", text: "hi", ts: 5 }] } },
  { type: "job_result", payload: { job_id: "j_1", attempt: 1, exit_code: 0, failure_reason: null, message: null } },
  { type: "draining", payload: {} },
  { type: "upgrade_status", payload: { version: "0.2.0", state: "rolled_back", reason: "exited with status 1 before its hello was accepted" } },
];
const coordinatorMessages: CoordinatorToAgent[] = [
  { type: "hello_ack", payload: { worker_id: "w_1", heartbeat_interval_s: 15, draining: false, batch_frames: true } },
  { type: "heartbeat_ack", payload: {} },
  { type: "assign_job", payload: { job_id: "j_1", attempt: 1, spec, gpu_indices: [0], inputs: [] } },
  { type: "cancel_job", payload: { job_id: "j_1", attempt: 1, reason: "user" } },
  { type: "result_ack", payload: { job_id: "j_1", attempt: 1 } },
  { type: "drain", payload: {} },
  { type: "error", payload: { code: "bad_message", message: "x" } },
  { type: "upgrade", payload: { version: "0.2.0", sha256: "a".repeat(64), size: 1234, url: "https://r2.example.com/gridx/agent-bundles/0.2.0/gridx-agent.mjs?X-Amz-Signature=x" } },
];

describe("codec", () => {
  it.each(agentMessages)("round-trips agent message $type", (msg) => {
    expect(decode(encode(msg), AgentToCoordinator)).toEqual({ ok: true, message: msg });
  });

  it.each(coordinatorMessages)("round-trips coordinator message $type", (msg) => {
    expect(decode(encode(msg), CoordinatorToAgent)).toEqual({ ok: true, message: msg });
  });

  it("puts the version in every envelope", () => {
    expect(JSON.parse(encode(agentMessages[1]!))).toEqual({ v: PROTOCOL_VERSION, type: "heartbeat", payload: {} });
  });

  it("refuses another version", () => {
    const r = decode(JSON.stringify({ v: PROTOCOL_VERSION + 1, type: "heartbeat", payload: {} }), AgentToCoordinator);
    expect(r).toMatchObject({ ok: false, code: "protocol_version_unsupported" });
  });

  it("refuses an unknown type, a bad payload, a non-envelope and non-JSON without throwing", () => {
    expect(decode(JSON.stringify({ v: 1, type: "teleport", payload: {} }), AgentToCoordinator)).toMatchObject({ ok: false, code: "bad_message" });
    const bad = decode(JSON.stringify({ v: 1, type: "job_started", payload: { job_id: "j", attempt: 0 } }), AgentToCoordinator);
    expect(bad).toMatchObject({ ok: false, code: "bad_message" });
    expect(!bad.ok && bad.message).toMatch(/payload\.attempt/);
    expect(decode("{", AgentToCoordinator)).toMatchObject({ ok: false, message: "frame is not JSON" });
  });

  it("refuses an upgrade to a version that is no folder name, or with a digest that is not SHA-256 hex", () => {
    const order = { version: "0.2.0", sha256: "a".repeat(64), size: 1, url: "https://r2.example.com/b" };
    for (const bad of [{ version: "../etc" }, { version: ".hidden" }, { version: "a/b" }, { sha256: "A".repeat(64) }, { size: 0 }]) {
      expect(decode(encode({ type: "upgrade", payload: { ...order, ...bad } } as CoordinatorToAgent), CoordinatorToAgent).ok).toBe(false);
    }
  });

  it("does not accept a coordinator message from an agent", () => {
    expect(decode(encode(coordinatorMessages[2]!), AgentToCoordinator).ok).toBe(false);
  });

  it("has fixed heartbeat frames that decode as heartbeats", () => {
    expect(decode(HEARTBEAT_FRAME, AgentToCoordinator)).toMatchObject({ ok: true, message: { type: "heartbeat" } });
    expect(decode(HEARTBEAT_ACK_FRAME, CoordinatorToAgent)).toMatchObject({ ok: true, message: { type: "heartbeat_ack" } });
  });
});

describe("JobRequest", () => {
  it("reserves what the limits allow when no requirements are given", () => {
    const s = JobRequest.parse({ kind: "python", python: { script: "x" }, limits: { cpus: 2, memory_mb: 2048 } });
    expect(s.requirements).toEqual({ gpus: 0, cpus: 2, memory_mb: 2048, labels: {} });
    expect(s.task).toEqual({ kind: "python", python: { script: "x", args: [] } });
  });

  it("rejects fields of the other kind", () => {
    expect(JobRequest.safeParse({ kind: "python", python: { script: "x" }, command: { image: "a", argv: ["b"] } }).success).toBe(false);
  });

  it("counts UTF-8 bytes", () => {
    expect(utf8Length("aé€😀")).toBe(1 + 2 + 3 + 4);
  });

  it("decodes a batched frame message by message, in order, a bad one spoiling none of the others", () => {
    const frame = `[${encode(agentMessages[3]!)},{"v":1,"type":"teleport","payload":{}},${encode(agentMessages[5]!)}]`;
    const results = decodeFrame(frame, AgentToCoordinator);
    expect(results).toEqual([{ ok: true, message: agentMessages[3] }, expect.objectContaining({ ok: false, code: "bad_message" }), { ok: true, message: agentMessages[5] }]);
    expect(decodeFrame(JSON.stringify([1]), AgentToCoordinator)).toMatchObject([{ ok: false, code: "bad_message" }]);
  });

  it("refuses an empty batch and one over the message limit", () => {
    expect(decodeFrame("[]", AgentToCoordinator)).toMatchObject([{ ok: false, code: "bad_message" }]);
    const tooMany = `[${Array.from({ length: FRAME_LIMITS.messages + 1 }, () => encode(agentMessages[1]!)).join(",")}]`;
    const results = decodeFrame(tooMany, AgentToCoordinator);
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ ok: false, message: expect.stringContaining(String(FRAME_LIMITS.messages)) });
  });

  it("bounds every field an agent sends: attempt numbers, log text per line and per batch, capabilities", () => {
    const log = (lines: { stream: "stdout"; text: string; ts: number }[], attempt = 1) => encode({ type: "job_log", payload: { job_id: "j_1", attempt, seq: 0, lines } });
    const line = (chars: number) => ({ stream: "stdout" as const, text: "x".repeat(chars), ts: 1 });
    const first = (raw: string) => decodeFrame(raw, AgentToCoordinator)[0]!;
    expect(first(log([line(LOG_LIMITS.line_chars)])).ok).toBe(true);
    expect(first(log([line(LOG_LIMITS.line_chars + 1)]))).toMatchObject({ ok: false, message: expect.stringContaining("lines.0.text") });
    expect(first(log(Array.from({ length: 17 }, () => line(64 * 1024))))).toMatchObject({ ok: false, message: expect.stringContaining(String(LOG_LIMITS.batch_chars)) });
    expect(first(log([line(1)], 10_001)).ok).toBe(false);
    const hello = (cpu_cores: number) =>
      encode({ type: "hello", payload: { agent_version: "1", name: "n", slots: 1, running: [], caps: { cpu_cores, memory_mb: 1024, gpus: [], nvidia_runtime: false, labels: {}, os: "Linux", arch: "x64", wsl: false } } });
    expect(first(hello(CAPS_LIMITS.cpu_cores)).ok).toBe(true);
    expect(first(hello(1e300))).toMatchObject({ ok: false, message: expect.stringContaining("cpu_cores") });
  });

  it("packs messages into frames within the limits, in order, and one per frame without batching", () => {
    const small = agentMessages.map(encode);
    expect(packFrames(small, false)).toEqual(small);
    const packed = packFrames(small, true);
    expect(packed).toHaveLength(1);
    expect(decodeFrame(packed[0]!, AgentToCoordinator).map((r) => r.ok && r.message)).toEqual(agentMessages);
    expect(packFrames(small.slice(0, 1), true)).toEqual(small.slice(0, 1));

    const many = Array.from({ length: FRAME_LIMITS.messages * 2 + 1 }, () => small[1]!);
    expect(packFrames(many, true).map((f) => decodeFrame(f, AgentToCoordinator).length)).toEqual([FRAME_LIMITS.messages, FRAME_LIMITS.messages, 1]);

    // A message over the byte budget travels alone; those around it are packed on either side.
    // Lines at the agent's 64 KiB cut, enough of them to pass the frame's byte budget.
    const lines = Array.from({ length: 5 }, () => ({ stream: "stdout" as const, text: "x".repeat(60 * 1024), ts: 1 }));
    const big = encode({ type: "job_log", payload: { job_id: "j_1", attempt: 1, seq: 0, lines } });
    expect(big.length).toBeGreaterThan(FRAME_LIMITS.bytes);
    const frames = packFrames([small[1]!, small[3]!, big, small[5]!], true);
    expect(frames.map((f) => decodeFrame(f, AgentToCoordinator).map((r) => r.ok && r.message.type))).toEqual([["heartbeat", "job_started"], ["job_log"], ["job_result"]]);
    expect(frames.every((f) => f === big || f.length <= FRAME_LIMITS.bytes)).toBe(true);
  });
});
