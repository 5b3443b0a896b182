import { jobEventType, type JobEvent } from "../../../protocol/index.ts";
import type { DeliveryRow, JobEventRow } from "../db/webhooks.ts";

/** What routing needs of a webhook. */
export interface WebhookRoute {
  id: string;
  /** null: every project. */
  project: string | null;
  events: string[];
  createdAt: number;
}

/** A `job_events` row as the wire's JobEvent. */
export const jobEventOf = (row: JobEventRow): JobEvent => ({
  id: row.id,
  type: jobEventType(row.status),
  job_id: row.jobId,
  project: row.project,
  pool: row.pool,
  status: row.status,
  attempt: row.attempt,
  exit_code: row.exitCode,
  failure_reason: row.failureReason,
  at: row.at,
});

/**
 * The deliveries that events make: one per event and webhook of its project (or of every
 * project) that asked for its type, for events since the webhook was made. The body is the
 * event with the webhook's and the delivery's ids, fixed here so every retry sends the same bytes.
 */
export function deliveriesFor(events: JobEventRow[], hooks: WebhookRoute[], ctx: { now: number; newId: () => string }): DeliveryRow[] {
  const rows: DeliveryRow[] = [];
  for (const row of events) {
    const event = jobEventOf(row);
    for (const hook of hooks) {
      if ((hook.project !== null && hook.project !== event.project) || !hook.events.includes(event.type) || event.at < hook.createdAt) continue;
      const id = ctx.newId();
      rows.push({
        id,
        webhookId: hook.id,
        eventId: event.id,
        event: event.type,
        payload: JSON.stringify({ ...event, webhook_id: hook.id, delivery_id: id }),
        status: "pending",
        attempts: 0,
        nextAt: ctx.now,
        lastStatus: null,
        lastError: null,
        createdAt: ctx.now,
        finishedAt: null,
      });
    }
  }
  return rows;
}
