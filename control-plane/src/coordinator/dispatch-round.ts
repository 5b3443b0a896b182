import { envKey, repoKey, type CoordinatorToAgent } from "../../../protocol/index.ts";
import { queuedJobs, storeAssignments, type QueuedProject } from "../db/attempts.ts";
import type { Db } from "../db/client.ts";
import { getPoolSandbox } from "../db/pools.ts";
import { usageOf } from "../db/projects.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { policyFor, type Settings } from "../settings.ts";
import { effectiveRuntime } from "../sandbox-policy.ts";
import { buildAssignment, withoutUnstartable, type AssignmentContext } from "./assignments.ts";
import { fairOrder, type PoolUsage, type ProjectStanding } from "./fair-share.ts";
import type { PoolLedger } from "./ledger.ts";
import { planDispatch, prefetchRoom, type SchedulerState } from "./scheduler.ts";

/** Jobs read per scheduling round at most; more wait for the next round. */
const DISPATCH_BATCH = 500;

/**
 * A round reads this many queued jobs per free slot (at least DISPATCH_MIN_READ): while jobs
 * flow, a round follows every few results with a handful of slots free, and reading the
 * whole batch each time made decoding rows the coordinator's largest cost. The margin lets
 * jobs that fit nowhere yet be passed over for ones behind them.
 */
const READ_PER_FREE_SLOT = 4;
const DISPATCH_MIN_READ = 32;

/** Queued jobs read per round across projects at most; with many projects each gets a part (at least DISPATCH_MIN_READ). */
const DISPATCH_READ_TOTAL = 4 * DISPATCH_BATCH;

/** What one round works with: the pool's coordinator lends its ledger, usage and scheduler state, and its sockets. */
export interface RoundContext {
  db: Db;
  env: Bindings;
  settings: Settings;
  pool: string;
  ledger: PoolLedger;
  usage: PoolUsage;
  scheduler: SchedulerState;
  send(workerId: string, messages: CoordinatorToAgent[]): void;
  /** An assignment was stored but its message could not be built (the start bound requeues it). */
  unbuilt(): void;
}

/**
 * One scheduling round of a pool: reads the head of its queue, fails jobs that could never start,
 * orders the rest by fair share, places them (scheduler.ts), stores the attempts and sends their
 * assignments. `more` when the round was full, so another should follow at once.
 */
export async function dispatchRound(c: RoundContext): Promise<{ scheduler: SchedulerState; more: boolean; projects: string[] }> {
  const { ledger, pool } = c;
  const views = ledger.views();
  // Room in the workers' prefetch depths counts: a full pool still reads ahead what will run next.
  const free = views.reduce((n, w) => n + (w.draining ? 0 : Math.max(0, w.slots - w.used.slots) + Math.max(0, prefetchRoom(w))), 0);
  if (free === 0) return { scheduler: c.scheduler, more: false, projects: [] };
  const limit = Math.min(DISPATCH_BATCH, Math.max(DISPATCH_MIN_READ, free * READ_PER_FREE_SLOT));
  const withRoom = views.filter((w) => !w.draining && (w.slots - w.used.slots > 0 || prefetchRoom(w) > 0)).map((w) => w.id);
  const head = await queuedJobs(c.db, pool, { perProject: limit, total: DISPATCH_READ_TOTAL, floor: DISPATCH_MIN_READ, pinnedTo: withRoom });
  const context = await assignmentContext(c.db, c.env, c.settings, pool);
  const queued = await withoutUnstartable(context, head.jobs);
  // Whose jobs' events this round may have written: those it failed as unstartable, or assigned.
  const projects = [...new Set(head.jobs.map((j) => j.project))];
  if (queued.length === 0) return { scheduler: c.scheduler, more: false, projects };
  const byId = new Map(queued.map((j) => [j.id, j]));
  const now = Date.now();
  const held = ledger.slotsByProject();
  c.usage.advance(now, held);
  const { order } = fairOrder(
    queued.map((j) => ({ id: j.id, project: j.project, gpus: j.spec.requirements.gpus, spec: j.spec })),
    await standings(c, head.projects, held),
    c.usage.chargeS,
  );
  const plan = planDispatch(
    order.map(({ id, spec: { task, requirements, runtime, network, ports, worker } }) => ({
      id,
      requirements,
      worker,
      sandbox: { runtime: effectiveRuntime({ runtime }), network, ports: ports.length > 0 },
      affinity: task.kind === "repo" ? { env: envKey(task.repo), repo: repoKey(task.repo.code_repo_url) } : undefined,
    })),
    views,
    policyFor(c.settings, pool),
    c.scheduler,
  );
  const stored = await storeAssignments(
    c.db,
    plan.assignments.map((assignment) => ({ assignment, job: byId.get(assignment.jobId)! })),
    now,
    now + c.settings.START_TIMEOUT_S * 1000,
  );
  // Every stored attempt holds its slot, whether or not its message can be built.
  for (const { attempt } of stored) ledger.record(attempt);
  const outgoing = new Map<string, CoordinatorToAgent[]>();
  for (const { job, attempt } of stored) {
    try {
      const batch = outgoing.get(attempt.workerId) ?? [];
      batch.push(await buildAssignment(context, job.id, attempt.attempt, job.spec, attempt.gpuIndices));
      outgoing.set(attempt.workerId, batch);
    } catch (err) {
      // Not sent: the start bound takes it back and requeues it, the others go now.
      c.unbuilt();
      console.error(`coordinator(${pool}): the assignment of ${job.id} could not be built`, errorText(err));
    }
  }
  for (const [workerId, messages] of outgoing) c.send(workerId, messages);
  return { scheduler: plan.state, more: stored.length === limit, projects };
}

/** What building a pool's assignments needs, its sandbox policy read once for them all. */
export async function assignmentContext(db: Db, env: Bindings, settings: Settings, pool: string): Promise<AssignmentContext> {
  return { db, env, settings, pool, sandbox: (await getPoolSandbox(db, pool)).sandbox };
}

/**
 * How fair share weighs each project with queued jobs: its usage here, its weight and, for a
 * project with a running-jobs or GPU quota, what it holds in every pool (one read, only then).
 */
async function standings(c: RoundContext, projects: ReadonlyMap<string, QueuedProject>, slots: ReadonlyMap<string, number>): Promise<Map<string, ProjectStanding>> {
  const limited = [...projects].filter(([, p]) => p.quotas.max_running_jobs !== undefined || p.quotas.max_gpus !== undefined).map(([name]) => name);
  const inUse = await usageOf(c.db, limited);
  const result = new Map<string, ProjectStanding>();
  for (const [name, p] of projects) {
    const u = inUse.get(name);
    result.set(name, { usage: c.usage.of(name), held: slots.get(name) ?? 0, weight: p.weight, quota: u && { quotas: p.quotas, running_jobs: u.running_jobs, gpus: u.gpus } });
  }
  return result;
}
