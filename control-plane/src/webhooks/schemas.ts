import { z } from "@hono/zod-openapi";
import { JobEventType, ProjectName } from "../../../protocol/index.ts";
import { MAX_URL_CHARS } from "./target.ts";

/* The webhook routes' bodies, as named components of `/openapi.json`. */

const Timestamp = z.iso.datetime().openapi({ example: "2026-11-22T10:00:00.000Z" });
const EventType = JobEventType.clone().openapi("JobEventType");

export const WebhookCreate = z
  .object({
    url: z.string().min(1, "url is empty").max(MAX_URL_CHARS).openapi({ description: "https; plain http only to a loopback or private target the operator allows (WEBHOOK_ALLOW_TARGETS)", example: "https://ci.example.com/gridx" }),
    events: z.array(EventType).min(1, "name at least one event").max(JobEventType.options.length).openapi({ example: ["job.completed", "job.failed"] }),
    project: ProjectName.optional().openapi({ description: "the project whose job events are sent; absent: every project (admin only)" }),
  })
  .strict()
  .openapi("WebhookCreate");

export const Webhook = z
  .object({
    id: z.string().openapi({ example: "wh_01jd2x7k8m9n0p1q2r3s4t5v6w" }),
    project: z.string().nullable().openapi({ description: "null: every project" }),
    url: z.string(),
    events: z.array(z.string()),
    created_by: z.string(),
    created_at: Timestamp,
  })
  .openapi("Webhook");

export const WebhookCreated = Webhook.extend({
  secret: z.string().openapi({ description: "the signing secret (`whsec_…`); shown only in this answer", example: "whsec_3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }),
}).openapi("WebhookCreated");

export const WebhookList = z.object({ webhooks: z.array(Webhook) }).openapi("WebhookList");

export const Delivery = z
  .object({
    id: z.string().openapi({ description: "also the `gridx-delivery-id` header and the body's `delivery_id`" }),
    event: EventType,
    event_id: z.number().int().openapi({ description: "the job event's id" }),
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.number().int(),
    last_status: z.number().int().nullable().openapi({ description: "the HTTP status of the last try; null when none came" }),
    last_error: z.string().nullable().openapi({ description: "why the last try failed" }),
    next_at: Timestamp.nullable().openapi({ description: "when a pending delivery is tried next" }),
    created_at: Timestamp,
    finished_at: Timestamp.nullable(),
  })
  .openapi("WebhookDelivery");

export const DeliveryPage = z.object({ deliveries: z.array(Delivery), next_cursor: z.string().nullable() }).openapi("WebhookDeliveryPage");
