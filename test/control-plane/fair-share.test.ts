import { describe, expect, it } from "vitest";
import { accrue, decay, DEFAULT_RUN_S, fairOrder, PoolUsage, type FairJob, type ProjectStanding } from "../../control-plane/src/coordinator/fair-share.ts";

const HOUR = 3_600_000;

/** `n` queued jobs of a project, oldest first, with ids that sort across projects by `t0 + i`. */
const flood = (project: string, n: number, t0 = 0, gpus = 0): FairJob[] => Array.from({ length: n }, (_, i) => ({ id: `j${String(t0 + i).padStart(5, "0")}-${project}`, project, gpus }));

const standings = (entries: Record<string, Partial<ProjectStanding>>) =>
  new Map(Object.entries(entries).map(([name, s]) => [name, { usage: 0, held: 0, weight: 1, ...s }]));

const projectsOf = (jobs: FairJob[]) => jobs.map((j) => j.project);
const count = (projects: string[], p: string) => projects.filter((x) => x === p).length;

describe("fair share: the order a round offers jobs in", () => {
  it("alternates between projects of equal weight and usage", () => {
    const { order } = fairOrder([...flood("a", 10), ...flood("b", 10, 100)], standings({ a: {}, b: {} }), 60);
    expect(projectsOf(order).slice(0, 8)).toEqual(["a", "b", "a", "b", "a", "b", "a", "b"]);
    expect(order).toHaveLength(20);
  });

  it("gives weights 2:1 a 2:1 split", () => {
    const { order } = fairOrder([...flood("a", 100), ...flood("b", 100)], standings({ a: { weight: 2 }, b: { weight: 1 } }), 60);
    const first = projectsOf(order).slice(0, 30);
    expect(count(first, "a")).toBe(20);
    expect(count(first, "b")).toBe(10);
    // At every point of the order the split stays within one job of 2:1.
    for (let n = 1; n <= 60; n++) {
      const a = count(projectsOf(order).slice(0, n), "a");
      expect(Math.abs(a - (2 * n) / 3)).toBeLessThanOrEqual(1);
    }
  });

  it("puts a project with big recent usage behind a fresh one until the charges catch up", () => {
    const { order } = fairOrder([...flood("busy", 10), ...flood("fresh", 10, 100)], standings({ busy: { usage: 300 }, fresh: { usage: 0 } }), 60);
    // fresh pays 60 a job: it goes first five times (0..240 < 300), then ties at 300 and the oldest job (busy's) wins.
    expect(projectsOf(order).slice(0, 8)).toEqual(["fresh", "fresh", "fresh", "fresh", "fresh", "busy", "fresh", "busy"]);
  });

  it("charges the slots a project holds now as runs to come", () => {
    // Neither has accrued usage yet, but busy's three runs will: fresh gets the next three slots.
    const { order } = fairOrder([...flood("busy", 5), ...flood("fresh", 5, 100)], standings({ busy: { held: 3 }, fresh: {} }), 60);
    expect(projectsOf(order).slice(0, 4)).toEqual(["fresh", "fresh", "fresh", "busy"]);
  });

  it("keeps priority order within a project", () => {
    const a = [
      { id: "j9-a-urgent", project: "a", gpus: 0 },
      { id: "j1-a", project: "a", gpus: 0 },
      { id: "j2-a", project: "a", gpus: 0 },
    ];
    const b = [
      { id: "j5-b-urgent", project: "b", gpus: 0 },
      { id: "j0-b", project: "b", gpus: 0 },
    ];
    const { order } = fairOrder([...a, ...b], standings({ a: {}, b: {} }), 60);
    expect(order.filter((j) => j.project === "a").map((j) => j.id)).toEqual(["j9-a-urgent", "j1-a", "j2-a"]);
    expect(order.filter((j) => j.project === "b").map((j) => j.id)).toEqual(["j5-b-urgent", "j0-b"]);
  });

  it("treats a project it knows nothing of as weight 1 with no usage", () => {
    const { order } = fairOrder([...flood("known", 4, 0), ...flood("new", 4, 100)], standings({ known: { usage: 1000 } }), 60);
    expect(projectsOf(order).slice(0, 4)).toEqual(["new", "new", "new", "new"]);
  });

  describe("quotas", () => {
    it("holds every job of a project at max_running_jobs and says which quota", () => {
      const { order, held } = fairOrder([...flood("capped", 5), ...flood("free", 3, 100)], standings({ capped: { quota: { quotas: { max_running_jobs: 2 }, running_jobs: 2, gpus: 0 } }, free: {} }), 60);
      expect(projectsOf(order)).toEqual(["free", "free", "free"]);
      expect(held.get("capped")).toMatchObject({ jobs: 5, hit: { quota: "max_running_jobs", limit: 2, usage: 2 } });
      expect(held.get("capped")!.hit.message).toContain("max_running_jobs");
    });

    it("counts the jobs a round takes against the quota", () => {
      const { order, held } = fairOrder(flood("capped", 5), standings({ capped: { quota: { quotas: { max_running_jobs: 3 }, running_jobs: 1, gpus: 0 } } }), 60);
      expect(order).toHaveLength(2);
      expect(held.get("capped")).toMatchObject({ jobs: 3 });
    });

    it("lets a job needing fewer GPUs past one that max_gpus holds", () => {
      const jobs = [...flood("g", 1, 0, 2), ...flood("g", 1, 1, 1)];
      const { order, held } = fairOrder(jobs, standings({ g: { quota: { quotas: { max_gpus: 4 }, running_jobs: 0, gpus: 3 } } }), 60);
      expect(order.map((j) => j.gpus)).toEqual([1]);
      expect(held.get("g")).toMatchObject({ jobs: 1, hit: { quota: "max_gpus" } });
    });

    it("holds nothing for a project without running limits", () => {
      const { order, held } = fairOrder(flood("q", 4), standings({ q: { quota: { quotas: { max_queued_jobs: 1 }, running_jobs: 50, gpus: 0 } } }), 60);
      expect(order).toHaveLength(4);
      expect(held.size).toBe(0);
    });
  });
});

describe("fair share: decayed usage", () => {
  it("halves after one half-life, quarters after two", () => {
    expect(decay(1000, HOUR, HOUR)).toBeCloseTo(500);
    expect(decay(1000, 2 * HOUR, HOUR)).toBeCloseTo(250);
    expect(accrue(1000, 0, HOUR, HOUR)).toBeCloseTo(500);
  });

  it("accrues slots × seconds over a short interval", () => {
    expect(accrue(0, 4, 10_000, HOUR)).toBeCloseTo(40, 1);
    expect(accrue(100, 2, 1_000, HOUR)).toBeCloseTo(100 * 2 ** (-1 / 3600) + 2, 3);
  });

  it("advancing in many steps comes to the same as one step", () => {
    const held = new Map([["a", 3]]);
    const once = new PoolUsage(HOUR, undefined, 0);
    once.advance(HOUR, held);
    const stepped = new PoolUsage(HOUR, undefined, 0);
    for (let t = 60_000; t <= HOUR; t += 60_000) stepped.advance(t, held);
    expect(stepped.of("a")).toBeCloseTo(once.of("a"), 6);
    // One hour of 3 slots, each second decayed from when it accrued: 3·H/ln2·(1 − 1/2).
    expect(once.of("a")).toBeCloseTo((3 * 3600) / Math.LN2 / 2, 3);
  });

  it("forgets a project whose usage decayed to nothing, and survives a save and restore", () => {
    const usage = new PoolUsage(1000, undefined, 0);
    usage.advance(1000, new Map([["a", 1], ["b", 1]]));
    usage.advance(2000, new Map([["b", 1]]));
    const restored = new PoolUsage(1000, usage.saved(), 5000);
    expect(restored.of("b")).toBeCloseTo(usage.of("b"));
    restored.advance(60_000, new Map());
    expect(restored.entries()).toEqual([]);
  });

  it("estimates a run's length from finished attempts", () => {
    const usage = new PoolUsage(HOUR, undefined, 0);
    expect(usage.chargeS).toBe(DEFAULT_RUN_S);
    for (let i = 0; i < 50; i++) usage.finished(5_000);
    expect(usage.chargeS).toBeCloseTo(5, 2);
  });
});
