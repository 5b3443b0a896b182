import { describe, expect, it } from "vitest";
import type { JobRequirements } from "../../protocol/index.ts";
import { autoscaleCalls, shortfallOf, trackIdle, unplaced, type AutoscaleFacts, type DemandJob } from "../../control-plane/src/fleet/autoscale.ts";
import type { WorkerView } from "../../control-plane/src/coordinator/scheduler.ts";
import { caps } from "./helpers.ts";

const T = { upAfterMs: 60_000, downAfterMs: 600_000, cooldownMs: 300_000 };
const NOW = 10_000_000;

const job = (id: string, req: Partial<JobRequirements> = {}, waitedMs = 61_000, sandbox: DemandJob["sandbox"] = { runtime: "runc", network: "none" }): DemandJob => ({
  id,
  queuedAt: NOW - waitedMs,
  requirements: { cpus: 1, memory_mb: 1024, gpus: 0, labels: {}, ...req },
  sandbox,
});

const worker = (id: string, over: { busySlots?: number; slots?: number; draining?: boolean; caps?: Parameters<typeof caps>[0] } = {}): WorkerView => ({
  id,
  caps: caps(over.caps),
  slots: over.slots ?? 1,
  draining: over.draining ?? false,
  used: { slots: over.busySlots ?? 0, cpusMilli: (over.busySlots ?? 0) * 1000, memoryMb: (over.busySlots ?? 0) * 1024, gpuIndices: [] },
  waiting: 0,
  warm: { envs: [], repos: [] },
});

const facts = (over: Partial<AutoscaleFacts>): AutoscaleFacts => ({ jobs: [], workers: [], idle: {}, lastCalls: {}, now: NOW, ...over });

describe("autoscaling decisions", () => {
  it("calls scale_up only once unplaced demand has waited SCALE_UP_AFTER_S", () => {
    expect(autoscaleCalls(facts({ jobs: [job("j1", {}, 59_999)] }), T)).toEqual([]);
    const [call] = autoscaleCalls(facts({ jobs: [job("j1", {}, 60_000)] }), T);
    expect(call).toMatchObject({ kind: "scale_up", shortfall: { jobs: 1, never_fit: 1, oldestQueuedAt: NOW - 60_000 } });
  });

  it("counts in the shortfall only the jobs that lasted, not a burst that just came", () => {
    const [call] = autoscaleCalls(facts({ jobs: [job("old"), job("new", { cpus: 8 }, 1_000)] }), T);
    expect(call).toMatchObject({ kind: "scale_up", shortfall: { jobs: 1, cpus: 1 } });
  });

  it("aggregates the shortfall: sums, the largest job, and labels by how many jobs ask for each", () => {
    const s = shortfallOf(
      [job("a", { cpus: 0.5, memory_mb: 512, labels: { zone: "eu" } }), job("b", { cpus: 2, memory_mb: 4096, gpus: 2, labels: { zone: "eu", gpu: "a100" } }), job("c", { cpus: 1.25, gpus: 1 }, 90_000)],
      [],
    );
    expect(s).toEqual({
      jobs: 3,
      never_fit: 3,
      cpus: 3.75,
      memory_mb: 512 + 4096 + 1024,
      gpus: 3,
      largest: { cpus: 2, memory_mb: 4096, gpus: 2 },
      labels: { "zone=eu": 2, "gpu=a100": 1 },
      oldestQueuedAt: NOW - 90_000,
    });
  });

  it("makes no call while the demand fits an online worker with room", () => {
    expect(autoscaleCalls(facts({ jobs: [job("j1"), job("j2")], workers: [worker("w1", { slots: 2 })] }), T)).toEqual([]);
  });

  it("counts jobs an online worker could run but has no room for, and tells them apart from jobs none can ever run", () => {
    const workers = [worker("w1", { busySlots: 1 })];
    const [call] = autoscaleCalls(facts({ jobs: [job("fits-later"), job("too-big", { memory_mb: 64 * 1024 }), job("gpu", { gpus: 1 })], workers }), T);
    expect(call).toMatchObject({ kind: "scale_up", shortfall: { jobs: 3, never_fit: 2 } });
  });

  it("places what the free slots take before counting the rest", () => {
    const left = unplaced([job("j1"), job("j2"), job("j3")], [worker("w1", { slots: 2 })]);
    expect(left.map((j) => j.id)).toEqual(["j3"]);
  });

  it("does not count a draining worker, nor one without the job's runtime, as room", () => {
    expect(unplaced([job("j1")], [worker("w1", { draining: true })])).toHaveLength(1);
    const gvisor = job("g", {}, 61_000, { runtime: "gvisor", network: "none" });
    expect(shortfallOf(unplaced([gvisor], [worker("w1")]), [worker("w1")])).toMatchObject({ jobs: 1, never_fit: 1 });
  });

  it("keeps SCALE_COOLDOWN_S between calls of one kind, each kind on its own", () => {
    const f = { jobs: [job("j1")], idle: { w9: NOW - 700_000 } };
    expect(autoscaleCalls(facts({ ...f, lastCalls: { scale_up: NOW - 299_999 } }), T).map((c) => c.kind)).toEqual(["scale_down"]);
    expect(autoscaleCalls(facts({ ...f, lastCalls: { scale_up: NOW - 300_000, scale_down: NOW - 1 } }), T).map((c) => c.kind)).toEqual(["scale_up"]);
    expect(autoscaleCalls(facts({ ...f, lastCalls: { scale_up: NOW - 1, scale_down: NOW - 1 } }), T)).toEqual([]);
  });

  it("hints scale_down for workers idle SCALE_DOWN_AFTER_S, longest idle first", () => {
    const idle = { w1: NOW - 600_000, w2: NOW - 599_999, w3: NOW - 900_000 };
    expect(autoscaleCalls(facts({ idle }), T)).toEqual([
      {
        kind: "scale_down",
        idle: [
          { id: "w3", idleSince: NOW - 900_000 },
          { id: "w1", idleSince: NOW - 600_000 },
        ],
      },
    ]);
  });

  it("tracks idle time from when a connected worker last held nothing", () => {
    const busy = worker("busy", { busySlots: 1 });
    const prefetched = { ...worker("pre"), waiting: 1 };
    const first = trackIdle({}, [worker("a"), busy, prefetched], 1000);
    expect(first).toEqual({ a: 1000 });
    // Still idle: its time runs on. Busy again, or gone: it starts over.
    expect(trackIdle({ ...first, gone: 5 }, [worker("a"), worker("busy")], 2000)).toEqual({ a: 1000, busy: 2000 });
    expect(trackIdle({ a: 1000 }, [worker("a", { busySlots: 1 })], 3000)).toEqual({});
  });
});
