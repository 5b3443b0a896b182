import { env } from "cloudflare:test";
import * as fc from "fast-check";
import { z } from "zod";
import { describe, expect, it } from "vitest";
import { CloseCode } from "../../control-plane/src/coordinator/sessions.ts";
import { coordinatorFor } from "../../control-plane/src/coordinator/stub.ts";
import { AgentToCoordinator, CoordinatorToAgent, decodeFrame, decodeTunnelFrame, ErrorCode, FRAME_LIMITS, HEARTBEAT_FRAME, PROTOCOL_VERSION } from "../../protocol/index.ts";
import { mutate, mutation, nastyString, RAW_JSON_TEXTS } from "../helpers/fuzz-values.ts";
import { arbitraryFor, type JsonSchema } from "../helpers/json-schema-arbitrary.ts";
import { pollUntil } from "../helpers/poll.ts";
import { checkProperty, fuzzTestTimeoutMs } from "./fuzz.ts";
import { agentToken, api, FakeAgent, submit, uniquePool, waitForJob } from "./helpers.ts";

/**
 * Every agent message, from an authenticated agent socket before and after hello: valid
 * (generated from the protocol's schema), mutated, truncated, batched, binary. Properties: the
 * coordinator answers every message it refuses with an `error` frame, the socket stays usable,
 * the object keeps answering RPC, and another agent's running job (its state, output, attempt
 * and pending probe) is untouched and still finishes normally. Each run gets its own pool.
 */

const FILE = "test/control-plane/fuzz-protocol.test.ts";
/** Cases per message type; each builds its own pool with a running job first (about 0.3 s a case). */
const RUNS_PER_TYPE = 10;
const RUNS_MIXED = 24;
/** Past a log line's limit (64 KiB); four in a batch stay under the runtime's 1 MiB message limit. */
const HUGE_CHARS = [70_000, 200_000] as const;
/** How long a refused or mistyped message may take to be answered. */
const ANSWER_MS = 3000;

/** Stand-ins for what exists only once a run has built its pool: replaced in the rendered frame. */
const VICTIM_JOB = "@victim-job";
const VICTIM_PROBE = "@victim-probe";
const OWN_JOB = "@own-job";
const KNOWN = {
  job_id: fc.constantFrom(VICTIM_JOB, OWN_JOB, "j_ghost"),
  attempt: fc.constantFrom(1, 2),
  name: fc.constantFrom("victim", "attacker"),
  probe_id: fc.constant(VICTIM_PROBE),
};

type Type = AgentToCoordinator["type"];
const PROTOCOL = z.toJSONSchema(AgentToCoordinator, { io: "input" }) as unknown as { oneOf: (JsonSchema & { properties: { type: { const: Type } } })[] };
const TYPES = PROTOCOL.oneOf.map((s) => s.properties.type.const);
const valid = (type: Type) => arbitraryFor(PROTOCOL.oneOf.find((s) => s.properties.type.const === type)!, { known: KNOWN }).map((m) => ({ v: PROTOCOL_VERSION, ...(m as object) }));

type Frame = { kind: "text"; text: string } | { kind: "json"; value: unknown } | { kind: "cut"; value: unknown; at: number } | { kind: "binary"; bytes: number[] };
type ProtoCase = { hello: boolean; frames: Frame[] };

function messageOf(types: Type[]): fc.Arbitrary<unknown> {
  const one = fc.constantFrom(...types).chain(valid);
  return fc.oneof({ weight: 2, arbitrary: one }, fc.tuple(one, mutation(HUGE_CHARS)).map(([m, how]) => mutate(m, how)));
}

function frameOf(types: Type[]): fc.Arbitrary<Frame> {
  const message = messageOf(types);
  return fc.oneof(
    { weight: 4, arbitrary: message.map((value): Frame => ({ kind: "json", value })) },
    { weight: 2, arbitrary: fc.array(message, { minLength: 1, maxLength: 4 }).map((value): Frame => ({ kind: "json", value })) },
    { weight: 1, arbitrary: fc.tuple(message, fc.nat()).map(([value, at]): Frame => ({ kind: "cut", value, at })) },
    { weight: 1, arbitrary: fc.oneof(fc.constantFrom(...RAW_JSON_TEXTS, "", "[]", `[${Array(FRAME_LIMITS.messages + 1).fill(HEARTBEAT_FRAME).join(",")}]`), nastyString).map((text): Frame => ({ kind: "text", text })) },
    { weight: 1, arbitrary: fc.array(fc.nat(255), { maxLength: 16 }).map((bytes): Frame => ({ kind: "binary", bytes })) },
  );
}

const caseOf = (types: Type[]): fc.Arbitrary<ProtoCase> => fc.record({ hello: fc.boolean(), frames: fc.array(frameOf(types), { minLength: 1, maxLength: 3 }) });

function render(frame: Frame, w: Pick<World, "job" | "probe" | "own">): string | Uint8Array {
  if (frame.kind === "binary") return new Uint8Array(frame.bytes);
  const text = frame.kind === "text" ? frame.text : JSON.stringify(frame.value);
  const real = text.replaceAll(VICTIM_JOB, w.job).replaceAll(VICTIM_PROBE, w.probe).replaceAll(OWN_JOB, w.own);
  return frame.kind === "cut" ? real.slice(0, frame.at % real.length) : real;
}

/**
 * What the coordinator must answer, decoded the way it decodes: an error for every message it
 * cannot read or refuses (anything before hello but hello and heartbeat; any report or probe
 * result about what the attacker does not hold: the victim's job, a ghost, a probe), an ack
 * for each heartbeat, an ack or an error for each hello. A report about the attacker's own job
 * may be admitted or refused (`maybe`): whether it still holds that attempt depends on what
 * it sent before. A second hello on a connection is refused. Two messages end the connection
 * after their error, by design: a wrong protocol version (4001) and a first hello with another
 * token's worker name (4005).
 */
type Expected = { errors: number; maybe: number; hellos: number; heartbeats: number; closes: number | null };

function expectedAnswers(frames: (string | Uint8Array)[], helloFirst: boolean, own: string): Expected {
  const out: Expected = { errors: 0, maybe: 0, hellos: 0, heartbeats: 0, closes: null };
  let helloed = helloFirst;
  for (const frame of frames) {
    if (typeof frame !== "string") {
      // A tunnel frame of a stream this socket has not open is ignored; other bytes are an error.
      if (decodeTunnelFrame(frame) === null) out.errors++;
      continue;
    }
    for (const d of decodeFrame(frame, AgentToCoordinator)) {
      if (!d.ok) {
        out.errors++;
        if (d.code === ErrorCode.protocolVersion) return { ...out, closes: CloseCode.protocolVersion };
      } else if (d.message.type === "heartbeat") out.heartbeats++;
      else if (d.message.type === "hello") {
        // One hello per connection: a second is refused, whatever worker it names.
        if (helloed) out.errors++;
        else if (d.message.payload.name === "victim") return { ...out, errors: out.errors + 1, closes: CloseCode.identity };
        else {
          out.hellos++;
          helloed = true;
        }
      } else if (!helloed) out.errors++;
      // An upgrade report with no order behind it is ignored, not refused.
      else if (d.message.type === "warm_cache" || d.message.type === "draining" || d.message.type === "upgrade_status") continue;
      else if (d.message.type !== "probe_result" && d.message.payload.job_id === own) out.maybe++;
      else out.errors++;
    }
  }
  return out;
}

/**
 * A pool with a victim agent running a job, having written a line and holding a pending probe,
 * and a second job for the attacker.
 */
async function victimWorld() {
  const pool = uniquePool();
  const [victimToken, attackerToken, job] = await Promise.all([agentToken(pool, "victim"), agentToken(pool, "attacker"), submit({ pool }).then((r) => r.json.id as string)]);
  const victim = await FakeAgent.join(victimToken, { name: "victim", slots: 1 });
  // WORKER_TIMEOUT_S is 2 in tests.
  const beat = setInterval(() => victim.agent.sendRaw(HEARTBEAT_FRAME), 500);
  await victim.agent.next("assign_job");
  victim.agent.send({ type: "job_started", payload: { job_id: job, attempt: 1 } });
  victim.agent.send({ type: "job_log", payload: { job_id: job, attempt: 1, seq: 0, lines: [{ stream: "stdout", text: "victim line", ts: 1 }] } });
  const probeAnswer = api(`/v1/workers/${victim.workerId}/probes`, { method: "POST", json: { command: "uptime", timeout_s: 300 } });
  // Awaited by victimFinishes; a run that fails before it must not leave an unhandled rejection.
  probeAnswer.catch(() => undefined);
  const probe = (await victim.agent.next("probe")).payload.probe_id;
  const before = await waitForJob(job, (j) => j.status === "running" && j.stdout === "victim line\n");
  // The victim is full: this one waits for the attacker's hello, so the attacker holds a job of its own.
  const own = (await submit({ pool })).json.id as string;
  return { pool, victim, beat, job, probe, probeAnswer, before, attackerToken, own };
}

type World = Awaited<ReturnType<typeof victimWorld>>;

/** The victim's job and probe are as they were, its socket open, and no cancel sent to it. */
async function victimUntouched(w: World): Promise<string | null> {
  if (w.victim.agent.closed) return `the victim's socket was closed: ${JSON.stringify(w.victim.agent.closed)}`;
  const job = (await api(`/v1/jobs/${w.job}`)).json;
  const keep = (j: any) => ({ status: j.status, attempt: j.attempt, worker_id: j.worker_id, stdout: j.stdout, stderr: j.stderr, exit_code: j.exit_code });
  if (JSON.stringify(keep(job)) !== JSON.stringify(keep(w.before))) return `the victim's job changed: ${JSON.stringify(keep(w.before))} → ${JSON.stringify(keep(job))}`;
  const probes = (await api(`/v1/workers/${w.victim.workerId}/probes`)).json.probes as { id: string; status: string }[];
  const probe = probes.find((p) => p.id === w.probe);
  if (probe?.status !== "pending") return `the victim's probe is ${JSON.stringify(probe)}, not pending`;
  if (await w.victim.agent.receives("cancel_job", 0)) return "the victim was told to cancel its job";
  return null;
}

const answerProbe = (w: World) =>
  w.victim.agent.send({ type: "probe_result", payload: { probe_id: w.probe, status: "completed", exit_code: 0, output: "victim probe", truncated: false, error: null } });

/** The victim then finishes its job and answers its probe as if nothing had happened. */
async function victimFinishes(w: World): Promise<string | null> {
  const ref = { job_id: w.job, attempt: 1 };
  answerProbe(w);
  w.victim.agent.send({ type: "job_log", payload: { ...ref, seq: 1, lines: [{ stream: "stdout", text: "victim end", ts: 2 }] } });
  w.victim.agent.send({ type: "job_result", payload: { ...ref, exit_code: 0, failure_reason: null, message: null } });
  await w.victim.agent.next("result_ack", ANSWER_MS);
  const done = await waitForJob(w.job, (j) => j.status !== "running");
  if (done.status !== "completed" || done.attempt !== 1 || done.stdout !== "victim line\nvictim end\n") {
    return `the victim's job ended as ${JSON.stringify({ status: done.status, attempt: done.attempt, stdout: done.stdout })}`;
  }
  const probe = await w.probeAnswer;
  if (probe.json?.output !== "victim probe") return `the victim's probe ended as ${probe.text}`;
  return null;
}

/** Connects the attacker (another agent token of the same pool), says hello if asked, and counts what comes back. */
async function attacker(w: World, hello: boolean) {
  const agent = await FakeAgent.connect(w.attackerToken);
  const got: CoordinatorToAgent["type"][] = [];
  if (hello) {
    agent.send({ type: "hello", payload: { agent_version: "fuzz", name: "attacker", slots: 1, caps: { cpu_cores: 1, memory_mb: 1024, gpus: [], nvidia_runtime: false, labels: {}, os: "fuzz", arch: "x64", wsl: false }, running: [] } });
    await agent.next("hello_ack");
    await agent.next("assign_job");
    agent.send({ type: "job_started", payload: { job_id: w.own, attempt: 1 } });
  }
  agent.ws.addEventListener("message", (ev) => {
    for (const d of decodeFrame(String(ev.data), CoordinatorToAgent)) if (d.ok) got.push(d.message.type);
  });
  return { agent, got };
}

const count = (xs: string[], type: string) => xs.filter((x) => x === type).length;
/** A heartbeat the runtime's auto-response does not match, so the coordinator itself answers it, after every frame before it. */
const SENTINEL = `{"v": ${PROTOCOL_VERSION}, "type": "heartbeat", "payload": {}}`;

async function runCase(c: ProtoCase): Promise<void> {
  const w = await victimWorld();
  const { agent, got } = await attacker(w, c.hello);
  try {
    const frames = c.frames.map((f) => render(f, w));
    const expected = expectedAnswers(frames, c.hello, w.own);
    for (const frame of frames) {
      agent.ws.send(frame);
      // A frame that ends the connection is the last one sent.
      if (expectedAnswers([frame], true, w.own).closes !== null) break;
    }
    const problems: string[] = [];
    let timedOut = false;
    if (expected.closes !== null) {
      await pollUntil(async () => agent.closed, (closed) => closed !== null, { timeoutMs: ANSWER_MS, intervalMs: 20, what: `the close ${expected.closes}` });
      if (agent.closed?.code !== expected.closes) problems.push(`closed with ${JSON.stringify(agent.closed)}, not ${expected.closes}`);
    } else {
      agent.sendRaw(SENTINEL);
      const acks = expected.heartbeats + 1;
      try {
        await pollUntil(async () => count(got, "heartbeat_ack"), (n) => n >= acks || agent.closed !== null, { timeoutMs: ANSWER_MS, intervalMs: 20, what: "the heartbeat answers" });
      } catch {
        problems.push(`the socket stopped answering: ${count(got, "heartbeat_ack")} of ${acks} heartbeat acks`);
      }
      // The sweep closes a socket that said no hello within HELLO_TIMEOUT_S (1 s in tests), or
      // went silent, by design; on a loaded machine a run can outlast that. Such a run proves nothing.
      timedOut = agent.closed?.code === CloseCode.helloTimeout || agent.closed?.code === CloseCode.heartbeatTimeout;
      if (agent.closed && !timedOut) problems.push(`the attacker's socket was closed: ${JSON.stringify(agent.closed)}`);
    }
    const errors = count(got, "error");
    const helloAcks = count(got, "hello_ack");
    const answers = errors + helloAcks;
    if (errors < expected.errors || answers < expected.errors + expected.hellos || answers > expected.errors + expected.hellos + expected.maybe) {
      problems.push(
        `answered ${errors} error(s) and ${helloAcks} hello_ack(s); expected ${expected.errors} error(s), ${expected.hellos} hello answer(s) and up to ${expected.maybe} more error(s); all answers: ${got.join(",")}`,
      );
    }
    // The object still answers its RPC callers (the API's nudges).
    await coordinatorFor(env, w.pool).jobQueued(w.pool);
    const untouched = await victimUntouched(w);
    if (untouched) problems.push(untouched);
    else {
      const finished = await victimFinishes(w);
      if (finished) problems.push(finished);
    }
    fc.pre(!timedOut);
    if (problems.length) throw new Error(`frames ${JSON.stringify(frames.map((f) => (typeof f === "string" ? f.slice(0, 300) : `binary(${f.length})`)))}:\n  ${problems.join("\n  ")}`);
  } finally {
    // A pool with unfinished jobs keeps its coordinator's sweep running: end the attacker's job.
    await api(`/v1/jobs/${w.own}/cancel`, { method: "POST" });
    clearInterval(w.beat);
    if (!agent.closed) agent.close();
    // The probe request would otherwise wait out its timeout; a second answer is refused, harmlessly.
    if (!w.victim.agent.closed) {
      answerProbe(w);
      w.victim.agent.close();
    }
  }
}

describe("the generators", () => {
  it("make every agent message, valid by the protocol's own decoder", () => {
    expect([...TYPES].sort()).toEqual(AgentToCoordinator.options.map((o) => o.shape.type.value).sort());
    for (const type of TYPES) {
      for (const m of fc.sample(valid(type), 30)) {
        const [decoded] = decodeFrame(JSON.stringify(m), AgentToCoordinator);
        expect(decoded?.ok ? decoded.message.type : decoded?.message).toBe(type);
      }
    }
  });
});

for (const type of TYPES) {
  it(`agent message ${type}`, async () => {
    await expect(checkProperty(`agent message ${type}`, fc.asyncProperty(caseOf([type]), runCase), RUNS_PER_TYPE, FILE)).resolves.toBeUndefined();
  }, fuzzTestTimeoutMs());
}

it("agent messages of every type, mixed and batched", async () => {
  await expect(checkProperty("agent messages of every type, mixed and batched", fc.asyncProperty(caseOf(TYPES), runCase), RUNS_MIXED, FILE)).resolves.toBeUndefined();
}, fuzzTestTimeoutMs());
