import { describe, expect, it } from "vitest";
import { fits, initialSchedulerState, planDispatch, prefetches, type Policy, type QueuedJob, type WorkerView } from "../../control-plane/src/coordinator/scheduler.ts";

const worker = (id: string, over: Partial<WorkerView> = {}): WorkerView => ({
  id,
  caps: { cpu_cores: 4, memory_mb: 8192, gpus: [], labels: {}, runtimes: ["runc"], egress: false },
  slots: 2,
  draining: false,
  used: { slots: 0, cpusMilli: 0, memoryMb: 0, gpuIndices: [] },
  warm: { envs: [], repos: [] },
  ...over,
});
const job = (id: string, req: Partial<QueuedJob["requirements"]> = {}): QueuedJob => ({ id, requirements: { gpus: 0, cpus: 1, memory_mb: 512, labels: {}, ...req }, sandbox: { runtime: "runc", network: "none" } });
const place = (jobs: QueuedJob[], workers: WorkerView[], policy: Policy, random?: () => number) =>
  planDispatch(jobs, workers, policy, initialSchedulerState(), random).assignments.map((a) => `${a.jobId}->${a.workerId}`);

describe("fits", () => {
  it("checks slots, CPUs, memory, GPUs, labels and draining", () => {
    expect(fits(worker("a"), job("j").requirements)).toBe(true);
    expect(fits(worker("a", { used: { slots: 2, cpusMilli: 0, memoryMb: 0, gpuIndices: [] } }), job("j").requirements)).toBe(false);
    expect(fits(worker("a"), job("j", { cpus: 4.5 }).requirements)).toBe(false);
    expect(fits(worker("a", { used: { slots: 1, cpusMilli: 3500, memoryMb: 0, gpuIndices: [] } }), job("j", { cpus: 0.5 }).requirements)).toBe(true);
    expect(fits(worker("a", { used: { slots: 1, cpusMilli: 3600, memoryMb: 0, gpuIndices: [] } }), job("j", { cpus: 0.5 }).requirements)).toBe(false);
    expect(fits(worker("a"), job("j", { memory_mb: 9000 }).requirements)).toBe(false);
    expect(fits(worker("a"), job("j", { gpus: 1 }).requirements)).toBe(false);
    expect(fits(worker("a", { caps: { cpu_cores: 4, memory_mb: 8192, gpus: [{ index: 0, model: "x", memory_mb: 1 }], labels: {}, runtimes: ["runc"], egress: false } }), job("j", { gpus: 1 }).requirements)).toBe(true);
    expect(fits(worker("a"), job("j", { labels: { zone: "lab" } }).requirements)).toBe(false);
    expect(fits(worker("a", { caps: { cpu_cores: 4, memory_mb: 8192, gpus: [], labels: { zone: "lab" }, runtimes: ["runc"], egress: false } }), job("j", { labels: { zone: "lab" } }).requirements)).toBe(true);
    expect(fits(worker("a", { draining: true }), job("j").requirements)).toBe(false);
  });

  it("places a job only on a worker that offers its runtime, and egress only where the agent filters it", () => {
    const gvisor = { runtime: "gvisor" as const, network: "none" as const };
    const egress = { runtime: "runc" as const, network: "egress" as const };
    const caps = (over: Partial<WorkerView["caps"]>) => ({ cpu_cores: 4, memory_mb: 8192, gpus: [], labels: {}, runtimes: ["runc" as const], egress: false, ...over });
    expect(fits(worker("a"), job("j").requirements, gvisor)).toBe(false);
    expect(fits(worker("a", { caps: caps({ runtimes: ["runc", "gvisor"] }) }), job("j").requirements, gvisor)).toBe(true);
    expect(fits(worker("a"), job("j").requirements, egress)).toBe(false);
    expect(fits(worker("a", { caps: caps({ egress: true }) }), job("j").requirements, egress)).toBe(true);
    const plain = worker("a");
    const sandboxed = worker("b", { caps: caps({ runtimes: ["runc", "gvisor"] }) });
    expect(place([{ ...job("g"), sandbox: gvisor }, job("r")], [plain, sandboxed], "first-idle")).toEqual(["g->b", "r->a"]);
  });

  it("places a job with ports only on a worker whose agent relays to ports", () => {
    const ported = { runtime: "runc" as const, network: "none" as const, ports: true };
    const caps = (over: Partial<WorkerView["caps"]>) => ({ cpu_cores: 4, memory_mb: 8192, gpus: [], labels: {}, runtimes: ["runc" as const], egress: false, ...over });
    expect(fits(worker("a"), job("j").requirements, ported)).toBe(false);
    expect(fits(worker("a", { caps: caps({ ports: false }) }), job("j").requirements, ported)).toBe(false);
    expect(fits(worker("a", { caps: caps({ ports: true }) }), job("j").requirements, ported)).toBe(true);
    expect(place([{ ...job("p"), sandbox: ported }, job("q")], [worker("old"), worker("new", { caps: caps({ ports: true }) })], "first-idle")).toEqual(["p->new", "q->old"]);
  });
});

describe("planDispatch", () => {
  it("first-idle prefers an idle worker, then the first that fits", () => {
    const busy = worker("a", { used: { slots: 1, cpusMilli: 1000, memoryMb: 512, gpuIndices: [] } });
    expect(place([job("1"), job("2"), job("3")], [busy, worker("b")], "first-idle")).toEqual(["1->b", "2->a", "3->b"]);
  });

  it("least-loaded evens out slot use", () => {
    const a = worker("a", { slots: 4, used: { slots: 2, cpusMilli: 0, memoryMb: 0, gpuIndices: [] } });
    const b = worker("b", { slots: 4 });
    expect(place([job("1"), job("2"), job("3")], [a, b], "least-loaded")).toEqual(["1->b", "2->b", "3->a"]);
  });

  it("round-robin cycles through workers and carries its position to the next round", () => {
    const ws = [worker("a", { slots: 9 }), worker("b", { slots: 9 }), worker("c", { slots: 9 })];
    const first = planDispatch([job("1"), job("2")], ws, "round-robin", initialSchedulerState());
    expect(first.assignments.map((a) => a.workerId)).toEqual(["a", "b"]);
    const second = planDispatch([job("3"), job("4")], ws, "round-robin", first.state);
    expect(second.assignments.map((a) => a.workerId)).toEqual(["c", "a"]);
  });

  it("weighted shares jobs in proportion to weights", () => {
    const big = worker("big", { slots: 100, caps: { cpu_cores: 64, memory_mb: 1e6, gpus: [], labels: { weight: "3" }, runtimes: ["runc"], egress: false } });
    const small = worker("small", { slots: 100, caps: { cpu_cores: 64, memory_mb: 1e6, gpus: [], labels: { weight: "1" }, runtimes: ["runc"], egress: false } });
    const jobs = Array.from({ length: 40 }, (_, i) => job(String(i)));
    const out = planDispatch(jobs, [big, small], "weighted", initialSchedulerState()).assignments;
    expect(out.filter((a) => a.workerId === "big")).toHaveLength(30);
    expect(out.filter((a) => a.workerId === "small")).toHaveLength(10);
  });

  it("random picks among fitting workers with the given source", () => {
    const ws = [worker("a"), worker("b"), worker("c")];
    expect(place([job("1")], ws, "random", () => 0.99)).toEqual(["1->c"]);
    expect(place([job("1")], ws, "random", () => 0)).toEqual(["1->a"]);
  });

  it("skips a job that fits nowhere without blocking the ones behind it", () => {
    expect(place([job("gpu", { gpus: 1 }), job("cpu")], [worker("a")], "first-idle")).toEqual(["cpu->a"]);
  });

  it("hands out distinct free GPU indices", () => {
    const gpus = [0, 1, 2, 3].map((index) => ({ index, model: "A100", memory_mb: 40000 }));
    const w = worker("g", { slots: 4, caps: { cpu_cores: 16, memory_mb: 65536, gpus, labels: {}, runtimes: ["runc"], egress: false }, used: { slots: 1, cpusMilli: 1000, memoryMb: 512, gpuIndices: [1] } });
    const out = planDispatch([job("x", { gpus: 2 }), job("y", { gpus: 1 }), job("z", { gpus: 1 })], [w], "first-idle", initialSchedulerState()).assignments;
    expect(out.map((a) => [a.jobId, a.gpuIndices])).toEqual([
      ["x", [0, 2]],
      ["y", [3]],
    ]);
  });

  it("never over-commits memory across a round", () => {
    const out = place([job("1", { memory_mb: 5000 }), job("2", { memory_mb: 5000 })], [worker("a", { slots: 8 })], "first-idle");
    expect(out).toEqual(["1->a"]);
  });

  it("does not change its inputs", () => {
    const w = worker("a");
    const state = initialSchedulerState();
    planDispatch([job("1")], [w], "weighted", state);
    expect(w.used.slots).toBe(0);
    expect(state).toEqual(initialSchedulerState());
  });

  describe("cache-aware placement", () => {
    const repoJob = (id: string, env: string, repo = "r1"): QueuedJob => ({ ...job(id), affinity: { env, repo } });

    it("prefers a fitting worker that has the job's environment warm, whatever the policy", () => {
      const ws = [worker("a"), worker("b", { warm: { envs: ["e1"], repos: [] } }), worker("c")];
      const policies: Policy[] = ["first-idle", "round-robin", "least-loaded", "weighted", "random"];
      expect(policies.map((policy) => place([repoJob("1", "e1")], ws, policy))).toEqual(policies.map(() => ["1->b"]));
    });

    it("falls back to a worker with the code repository, then to any fitting worker", () => {
      const ws = [worker("a"), worker("b", { warm: { envs: [], repos: ["r1"] } })];
      expect(place([repoJob("1", "e9")], ws, "first-idle")).toEqual(["1->b"]);
      expect(place([repoJob("1", "e9", "r9")], ws, "first-idle")).toEqual(["1->a"]);
    });

    it("never places a job on a warm worker it does not fit", () => {
      const ws = [worker("a"), worker("b", { warm: { envs: ["e1"], repos: [] }, used: { slots: 2, cpusMilli: 0, memoryMb: 0, gpuIndices: [] } })];
      expect(place([repoJob("1", "e1")], ws, "first-idle")).toEqual(["1->a"]);
    });

    it("sends later jobs of a new environment in the same round after the first", () => {
      const ws = [worker("a", { slots: 4 }), worker("b", { slots: 4 })];
      expect(place([repoJob("1", "new"), repoJob("2", "new"), repoJob("3", "new")], ws, "round-robin")).toEqual(["1->a", "2->a", "3->a"]);
      expect(place([job("1"), job("2")], ws, "round-robin")).toEqual(["1->a", "2->b"]);
    });
  });
});

describe("prefetch", () => {
  const full = (id: string, over: Partial<WorkerView> = {}) =>
    worker(id, { slots: 1, caps: { cpu_cores: 2, memory_mb: 4096, gpus: [], labels: {}, runtimes: ["runc"], egress: false, prefetch: 1 }, used: { slots: 1, cpusMilli: 1000, memoryMb: 512, gpuIndices: [] }, ...over });

  it("assigns a job beyond the free slots only within the depth the agent asked for", () => {
    expect(place([job("1"), job("2")], [full("a")], "first-idle")).toEqual(["1->a"]);
    expect(place([job("1")], [full("a", { waiting: 1 })], "first-idle")).toEqual([]);
    expect(place([job("1")], [full("a", { caps: { ...full("a").caps, prefetch: undefined } })], "first-idle")).toEqual([]);
    // A start reported before the result of the job whose slot it took: the agent still counts both.
    expect(place([job("1")], [full("a", { used: { slots: 2, cpusMilli: 2000, memoryMb: 1024, gpuIndices: [] } })], "first-idle")).toEqual([]);
  });

  it("fills free slots anywhere before it prefetches, and prefetches on the least-waiting worker", () => {
    const caps = { ...full("a").caps, prefetch: 2 };
    expect(place([job("1"), job("2")], [full("a"), worker("b", { slots: 1 })], "first-idle")).toEqual(["1->b", "2->a"]);
    expect(place([job("1"), job("2")], [full("a", { caps, waiting: 1 }), full("b", { caps })], "first-idle")).toEqual(["1->b", "2->a"]);
  });

  it("never prefetches a GPU job, onto a draining worker, or a job the worker could never run", () => {
    const gpuCaps = { ...full("a").caps, gpus: [{ index: 0, model: "T4", memory_mb: 15000 }] };
    expect(prefetches(full("a", { caps: gpuCaps }), job("g", { gpus: 1 }).requirements, { runtime: "runc", network: "none" })).toBe(false);
    expect(prefetches(full("a", { draining: true }), job("j").requirements, { runtime: "runc", network: "none" })).toBe(false);
    expect(prefetches(full("a"), job("j", { cpus: 3 }).requirements, { runtime: "runc", network: "none" })).toBe(false);
    expect(prefetches(full("a"), job("j", { labels: { zone: "lab" } }).requirements, { runtime: "runc", network: "none" })).toBe(false);
    expect(prefetches(full("a"), job("j").requirements, { runtime: "gvisor", network: "none" })).toBe(false);
    expect(prefetches(full("a"), job("j", { cpus: 2 }).requirements, { runtime: "runc", network: "none" })).toBe(true);
  });

  it("gives a prefetched job no GPUs and leaves the slot accounting to the ledger", () => {
    const plan = planDispatch([job("1")], [full("a")], "first-idle", initialSchedulerState());
    expect(plan.assignments).toEqual([{ jobId: "1", workerId: "a", gpuIndices: [], cpusMilli: 1000, memoryMb: 512 }]);
  });
});

describe("a job pinned to a worker", () => {
  const pinned = (id: string, to: string, req: Partial<QueuedJob["requirements"]> = {}): QueuedJob => ({ ...job(id, req), worker: to });

  it("goes only to its worker, whatever the policy prefers", () => {
    const busy = worker("a", { used: { slots: 1, cpusMilli: 1000, memoryMb: 512, gpuIndices: [] } });
    for (const policy of ["first-idle", "least-loaded", "round-robin", "weighted", "random"] as const) {
      expect(place([pinned("1", "a"), pinned("2", "b"), pinned("3", "c")], [busy, worker("b"), worker("c")], policy, () => 0)).toEqual(["1->a", "2->b", "3->c"]);
    }
  });

  it("waits while its worker is full, draining, absent or cannot fit it, and does not hold back the jobs behind it", () => {
    const full = worker("a", { slots: 1, used: { slots: 1, cpusMilli: 1000, memoryMb: 512, gpuIndices: [] } });
    expect(place([pinned("1", "a"), job("2")], [full, worker("b")], "first-idle")).toEqual(["2->b"]);
    expect(place([pinned("1", "a"), job("2")], [worker("a", { draining: true }), worker("b")], "first-idle")).toEqual(["2->b"]);
    expect(place([pinned("1", "gone"), job("2")], [worker("b")], "first-idle")).toEqual(["2->b"]);
    expect(place([pinned("1", "a", { memory_mb: 9000 }), job("2")], [worker("a"), worker("b", { caps: { ...worker("b").caps, memory_mb: 16384 } })], "first-idle")).toEqual(["2->a"]);
  });

  it("is prefetched only onto its own worker", () => {
    const full = (id: string, waiting = 0) =>
      worker(id, { slots: 1, waiting, caps: { cpu_cores: 2, memory_mb: 4096, gpus: [], labels: {}, runtimes: ["runc"], egress: false, prefetch: 1 }, used: { slots: 1, cpusMilli: 1000, memoryMb: 512, gpuIndices: [] } });
    expect(place([pinned("1", "b")], [full("a"), full("b")], "first-idle")).toEqual(["1->b"]);
    expect(place([pinned("1", "b")], [full("a"), full("b", 1)], "first-idle")).toEqual([]);
  });
});
