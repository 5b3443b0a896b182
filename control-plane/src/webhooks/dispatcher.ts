import { DurableObject } from "cloudflare:workers";
import { createDb, type Db } from "../db/client.ts";
import { deleteDeliveries, dueDeliveries, eventsAfter, insertDeliveries, lastEventId, nextDueAt, pruneDeliveries, recordAttempts, webhookRoutes } from "../db/webhooks.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { firstIdAt, newId } from "../ids.ts";
import { SecretVault } from "../secrets/vault.ts";
import { settle, type Settled } from "./backoff.ts";
import { deliveriesFor } from "./routing.ts";
import { tryDelivery } from "./send.ts";
import { webhookSettingsOf, type WebhookSettings } from "./settings.ts";
import { openSigningSecret } from "./signature.ts";

/** Storage key of the id of the last job event turned into deliveries. */
const CURSOR = "cursor";

/** After a round that failed outright (its settings do not parse, D1 is down), the next one comes this much later. */
const AFTER_FAILED_ROUND_MS = 30_000;

/** Finished deliveries past WEBHOOK_KEEP_DAYS are deleted at most this often, at most PRUNE_ROWS at a time. */
const PRUNE_EVERY_MS = 3_600_000;
const PRUNE_ROWS = 1000;

/**
 * Turns job events into webhook deliveries and sends them, retrying with backoff. One for the
 * grid (`dispatcherOf`), driven by its alarm: each round reads the events after its cursor,
 * adds their deliveries (INSERT OR IGNORE on webhook and event, then the cursor moves, so a
 * crash between the two repeats nothing), then sends the due ones. Delivery is at least once: a
 * try whose outcome could not be written is sent again. The alarm never throws and is armed
 * again while work remains: now while a round was full, at the next due retry, and every
 * WEBHOOK_SCAN_S while any webhook exists, so events reach webhooks even when no poke came.
 * Finished deliveries are kept WEBHOOK_KEEP_DAYS, so the table stays bounded.
 */
export class WebhookDispatcher extends DurableObject<Bindings> {
  /** Pokes so far; one that lands during a round makes the next round start at once. */
  private pokes = 0;
  /** When finished deliveries were last pruned (in memory: a restart prunes once more, which is harmless). */
  private prunedAt = 0;

  /**
   * Sets the cursor (to the newest event, on the first start) before a webhook is made, so the
   * new webhook's events all come after it, and arms a round.
   */
  async watch(): Promise<void> {
    await this.cursor(createDb(this.env.DB));
    await this.poke();
  }

  /** Job events were written: a round now. */
  async poke(): Promise<void> {
    this.pokes++;
    const now = Date.now();
    const at = await this.ctx.storage.getAlarm();
    if (at === null || at > now) await this.ctx.storage.setAlarm(now);
  }

  override async alarm(): Promise<void> {
    const pokes = this.pokes;
    let next: number | null;
    try {
      next = await this.round();
    } catch (err) {
      console.error(`WebhookDispatcher: round failed; trying again in ${AFTER_FAILED_ROUND_MS} ms`, errorText(err));
      next = Date.now() + AFTER_FAILED_ROUND_MS;
    }
    if (this.pokes !== pokes) next = Date.now();
    try {
      if (next !== null) await this.ctx.storage.setAlarm(next);
    } catch (err) {
      console.error("WebhookDispatcher: could not arm the alarm", errorText(err));
    }
  }

  /** One round; resolves with when the next is due (null: no webhooks and nothing pending, until a poke). */
  private async round(): Promise<number | null> {
    const settings = webhookSettingsOf(this.env);
    const db = createDb(this.env.DB);
    // Each step stands alone: a failure to read events must not hold back retries, nor the reverse.
    const failed = (step: string) => (err: unknown) => {
      console.error(`WebhookDispatcher: ${step} failed`, errorText(err));
      return null;
    };
    const ingested = await this.ingest(db, settings).catch(failed("reading events"));
    const sent = await this.sendDue(db, settings).catch(failed("sending deliveries"));
    await this.prune(db, settings).catch(failed("pruning deliveries"));
    const now = Date.now();
    if (ingested?.full || sent?.full) return now;
    const scan = now + settings.WEBHOOK_SCAN_S * 1000;
    if (!ingested || !sent) return scan;
    const due = await nextDueAt(db);
    const watching = ingested.watching ? scan : null;
    return due === null ? watching : Math.max(now, Math.min(due, watching ?? due));
  }

  private async prune(db: Db, s: WebhookSettings): Promise<void> {
    const now = Date.now();
    if (now - this.prunedAt < PRUNE_EVERY_MS) return;
    this.prunedAt = now;
    // Ids sort by creation time, so the oldest deliveries are a range of the primary key.
    const deleted = await pruneDeliveries(db, firstIdAt("whd", now - s.WEBHOOK_KEEP_DAYS * 86_400_000), PRUNE_ROWS);
    if (deleted === PRUNE_ROWS) this.prunedAt = 0;
  }

  private async cursor(db: Db): Promise<number> {
    const stored = await this.ctx.storage.get<number>(CURSOR);
    if (stored !== undefined) return stored;
    const last = await lastEventId(db);
    await this.ctx.storage.put(CURSOR, last);
    return last;
  }

  /** Adds the deliveries of the next batch of events; `watching`: some webhook exists. */
  private async ingest(db: Db, s: WebhookSettings): Promise<{ full: boolean; watching: boolean }> {
    const events = await eventsAfter(db, await this.cursor(db), s.WEBHOOK_BATCH);
    // Read after the events: a webhook this read misses was made after them, so none is its.
    const hooks = await webhookRoutes(db);
    if (events.length > 0) {
      const now = Date.now();
      if (hooks.length > 0) await insertDeliveries(db, deliveriesFor(events, hooks, { now, newId: () => newId("whd", now) }));
      await this.ctx.storage.put(CURSOR, events.at(-1)!.id);
    }
    return { full: events.length === s.WEBHOOK_BATCH, watching: hooks.length > 0 };
  }

  /** Sends the due deliveries, WEBHOOK_CONCURRENCY at a time, and records how each went. */
  private async sendDue(db: Db, s: WebhookSettings): Promise<{ full: boolean }> {
    const due = await dueDeliveries(db, Date.now(), s.WEBHOOK_BATCH);
    if (due.length === 0) return { full: false };
    await deleteDeliveries(db, due.filter((d) => d.webhook === null).map((d) => d.delivery.id));
    const vault = await SecretVault.fromKey(this.env.SECRETS_KEY);
    const secrets = new Map<string, Promise<string>>();
    const policy = { baseS: s.WEBHOOK_BACKOFF_S, maxS: s.WEBHOOK_BACKOFF_MAX_S, retryForH: s.WEBHOOK_RETRY_FOR_H };
    const live = due.flatMap(({ delivery, webhook }) => (webhook ? [{ delivery, webhook }] : []));
    const records = await mapLimited(live, s.WEBHOOK_CONCURRENCY, async ({ delivery, webhook }): Promise<Settled> => {
      let secret = secrets.get(webhook.id);
      if (!secret) secrets.set(webhook.id, (secret = openSigningSecret(vault, webhook.id, webhook.sealedSecret)));
      const outcome = await secret.then(
        (key) => tryDelivery({ id: delivery.id, webhookId: webhook.id, url: webhook.url, secret: key, body: delivery.payload }, { timeoutS: s.WEBHOOK_TIMEOUT_S, allowed: s.WEBHOOK_ALLOW_TARGETS, now: Date.now() }),
        () => ({ ok: false, status: null, error: "the signing secret does not open under SECRETS_KEY" }),
      );
      return settle(delivery, outcome, { now: Date.now(), random: Math.random() }, policy);
    });
    await recordAttempts(db, records);
    return { full: due.length === s.WEBHOOK_BATCH };
  }
}

/** `fn` over `items`, at most `limit` at a time, results in order. */
async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}
