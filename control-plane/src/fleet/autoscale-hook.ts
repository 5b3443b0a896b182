import type { JobSpec } from "../../../protocol/index.ts";
import { queuedJobs } from "../db/attempts.ts";
import { dueCalls, getAutoscaleHook, insertCalls, lastCallTimes, recordCallAttempts, type AutoscaleCallRow, type AutoscaleHookRow } from "../db/autoscale.ts";
import type { Db } from "../db/client.ts";
import { usageOf } from "../db/projects.ts";
import { workersByIds } from "../db/workers.ts";
import type { Bindings } from "../env.ts";
import { newId } from "../ids.ts";
import { startHold } from "../quotas.ts";
import { effectiveRuntime } from "../sandbox-policy.ts";
import type { Settings } from "../settings.ts";
import { SecretVault } from "../secrets/vault.ts";
import type { WorkerView } from "../coordinator/scheduler.ts";
import { settle } from "../webhooks/backoff.ts";
import { tryDelivery } from "../webhooks/send.ts";
import { webhookSettingsOf } from "../webhooks/settings.ts";
import { openSigningSecret } from "../webhooks/signature.ts";
import { autoscaleCalls, trackIdle, type AutoscaleCall, type DemandJob } from "./autoscale.ts";

/** Queued jobs read per evaluation at most; past it the shortfall is a lower bound (the next call after the cooldown sees the rest). */
const DEMAND_READ = 500;

/** Where the coordinator keeps since when each of its workers has been idle. */
const IDLE_KEY = "autoscale_idle";

/** What one evaluation works with: the coordinator lends its D1, storage and a snapshot of its workers. */
export interface AutoscaleContext {
  db: Db;
  env: Bindings;
  settings: Settings;
  pool: string;
  workers: WorkerView[];
  storage: DurableObjectStorage;
  now: number;
}

/**
 * A pool's autoscaling, once per coordinator sweep: with a hook set, decides the calls
 * (autoscale.ts), stores them, then sends the due ones, each retried with backoff within the
 * cooldown. A pool without a hook costs one read.
 */
export async function evaluateAutoscale(c: AutoscaleContext): Promise<void> {
  const hook = await getAutoscaleHook(c.db, c.pool);
  if (!hook) return;
  const previous = (await c.storage.get<Record<string, number>>(IDLE_KEY)) ?? {};
  const idle = trackIdle(previous, c.workers, c.now);
  if (JSON.stringify(idle) !== JSON.stringify(previous)) await c.storage.put(IDLE_KEY, idle);
  const [jobs, lastCalls] = await Promise.all([demand(c.db, c.pool), lastCallTimes(c.db, c.pool)]);
  const calls = autoscaleCalls(
    { jobs, workers: c.workers, idle, lastCalls, now: c.now },
    { upAfterMs: c.settings.SCALE_UP_AFTER_S * 1000, downAfterMs: c.settings.SCALE_DOWN_AFTER_S * 1000, cooldownMs: c.settings.SCALE_COOLDOWN_S * 1000 },
  );
  if (calls.length) {
    const rows = await Promise.all(calls.map((call) => callRow(c, call)));
    await insertCalls(c.db, c.pool, rows, c.now - webhookSettingsOf(c.env).WEBHOOK_KEEP_DAYS * 86_400_000);
  }
  await sendDue(c, hook);
}

/** The pool's ready queued jobs, less those a new worker would not start: held back by their project's quota, or pinned to one worker. */
async function demand(db: Db, pool: string): Promise<DemandJob[]> {
  // Pinned jobs are not demand a new machine meets (fleet/autoscale.ts): none are read.
  const head = await queuedJobs(db, pool, { perProject: DEMAND_READ, total: DEMAND_READ, floor: 1, pinnedTo: [] });
  const limited = [...head.projects].filter(([, p]) => p.quotas.max_running_jobs !== undefined || p.quotas.max_gpus !== undefined).map(([name]) => name);
  const usage = await usageOf(db, limited);
  return head.jobs.flatMap((j) => {
    const spec: JobSpec = j.spec;
    const u = usage.get(j.project);
    if (spec.worker || (u && startHold(head.projects.get(j.project)!.quotas, u, spec.requirements.gpus))) return [];
    return [{ id: j.id, queuedAt: j.queuedAt, requirements: spec.requirements, sandbox: { runtime: effectiveRuntime(spec), network: spec.network, ports: spec.ports.length > 0 } }];
  });
}

const iso = (ms: number) => new Date(ms).toISOString();

/** A decided call as stored: its body is what the hook receives (docs/autoscaling.md). */
async function callRow(c: AutoscaleContext, call: AutoscaleCall): Promise<AutoscaleCallRow> {
  const id = newId("asc", c.now);
  const head = { type: call.kind, call_id: id, pool: c.pool, at: iso(c.now) };
  let body: Record<string, unknown>;
  if (call.kind === "scale_up") {
    const { oldestQueuedAt, ...shortfall } = call.shortfall;
    body = { ...head, shortfall: { ...shortfall, oldest_queued_at: iso(oldestQueuedAt) }, online_workers: c.workers.length };
  } else {
    const names = new Map((await workersByIds(c.db, call.idle.map((w) => w.id))).map((w) => [w.id, w.name]));
    body = { ...head, workers: call.idle.map((w) => ({ id: w.id, name: names.get(w.id) ?? null, idle_since: iso(w.idleSince) })) };
  }
  return { id, pool: c.pool, kind: call.kind, payload: JSON.stringify(body), status: "pending", attempts: 0, nextAt: c.now, lastStatus: null, lastError: null, createdAt: c.now, finishedAt: null };
}

/** Sends the pool's due calls, signed as webhook deliveries are, and records how each went; a call is given up past the cooldown, when a fresh one may come. */
async function sendDue(c: AutoscaleContext, hook: AutoscaleHookRow): Promise<void> {
  const due = await dueCalls(c.db, c.pool, c.now);
  if (due.length === 0) return;
  const s = webhookSettingsOf(c.env);
  const secret = await SecretVault.fromKey(c.env.SECRETS_KEY)
    .then((vault) => openSigningSecret(vault, hook.id, hook.sealedSecret))
    .catch(() => null);
  const policy = { baseS: s.WEBHOOK_BACKOFF_S, maxS: s.WEBHOOK_BACKOFF_MAX_S, retryForH: c.settings.SCALE_COOLDOWN_S / 3600 };
  const records = [];
  for (const call of due) {
    const outcome =
      secret === null
        ? { ok: false, status: null, error: "the signing secret does not open under SECRETS_KEY" }
        : await tryDelivery({ id: call.id, webhookId: hook.id, url: hook.url, secret, body: call.payload }, { timeoutS: s.WEBHOOK_TIMEOUT_S, allowed: s.WEBHOOK_ALLOW_TARGETS, now: Date.now() });
    records.push(settle(call, outcome, { now: Date.now(), random: Math.random() }, policy));
  }
  await recordCallAttempts(c.db, records);
}
