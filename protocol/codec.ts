import { z } from "zod";
import { ErrorCode } from "./errors.ts";
import { AgentToCoordinator, CoordinatorToAgent } from "./messages.ts";
import { PROTOCOL_VERSION } from "./version.ts";

type Message = { type: string; payload: unknown };
export type DecodeResult<T> =
  | { ok: true; message: T }
  | { ok: false; code: ErrorCode; message: string };

/** Serialises a message into the `{v, type, payload}` envelope; fields with defaults may be left out. */
export function encode(message: z.input<typeof AgentToCoordinator> | z.input<typeof CoordinatorToAgent>): string {
  return JSON.stringify({ v: PROTOCOL_VERSION, type: message.type, payload: message.payload });
}

const Envelope = z.object({ v: z.number(), type: z.string(), payload: z.unknown() });

/**
 * Frame batching, which both sides offer in hello / hello_ack (`batch_frames`): a frame may
 * then carry several messages as a JSON array of envelopes, in order. One frame per burst of
 * messages costs the receiver one socket event instead of one per message. A message larger
 * than the byte budget still travels, alone.
 */
export const FRAME_LIMITS = { messages: 256, bytes: 256 * 1024 } as const;

/**
 * Parses and validates a frame against a message set: one message or, where batching was
 * agreed, an array of them; one result per message, in order. Never throws: a peer may be out
 * of date or hostile, and a bad frame must not take down the connection's handler. A
 * malformed message does not spoil the others.
 *
 * @example
 * for (const r of decodeFrame(raw, AgentToCoordinator)) {
 *   if (!r.ok) ws.send(encode({ type: "error", payload: { code: r.code, message: r.message } }));
 * }
 */
export function decodeFrame<S extends z.ZodType<Message>>(raw: string, schema: S): DecodeResult<z.infer<S>>[] {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return [{ ok: false, code: ErrorCode.badMessage, message: "frame is not JSON" }];
  }
  if (!Array.isArray(json)) return [validate(json, schema)];
  if (json.length === 0 || json.length > FRAME_LIMITS.messages) {
    return [{ ok: false, code: ErrorCode.badMessage, message: `a batched frame carries 1 to ${FRAME_LIMITS.messages} messages, not ${json.length}` }];
  }
  return json.map((item) => validate(item, schema));
}

/**
 * Packs encoded messages into as few frames as the limits allow, in order; without batching,
 * one frame each.
 */
export function packFrames(envelopes: readonly string[], batch: boolean): string[] {
  if (!batch) return [...envelopes];
  const frames: string[] = [];
  let group: string[] = [];
  let bytes = 0;
  const close = () => {
    if (group.length) frames.push(group.length === 1 ? group[0]! : `[${group.join(",")}]`);
    group = [];
    bytes = 0;
  };
  for (const e of envelopes) {
    if (group.length === FRAME_LIMITS.messages || (group.length > 0 && bytes + e.length + 1 > FRAME_LIMITS.bytes)) close();
    group.push(e);
    bytes += e.length + 1;
  }
  close();
  return frames;
}

function validate<S extends z.ZodType<Message>>(json: unknown, schema: S): DecodeResult<z.infer<S>> {
  const envelope = Envelope.safeParse(json);
  if (!envelope.success) return { ok: false, code: ErrorCode.badMessage, message: "frame is not a {v, type, payload} envelope" };
  if (envelope.data.v !== PROTOCOL_VERSION) {
    return {
      ok: false,
      code: ErrorCode.protocolVersion,
      message: `protocol version ${envelope.data.v} is not supported; this side speaks version ${PROTOCOL_VERSION}`,
    };
  }
  const parsed = schema.safeParse({ type: envelope.data.type, payload: envelope.data.payload });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join(".")}` : "";
    return { ok: false, code: ErrorCode.badMessage, message: `bad ${envelope.data.type} message${where}: ${issue?.message ?? "invalid"}` };
  }
  return { ok: true, message: parsed.data };
}

/**
 * The heartbeat frames, fixed strings so the coordinator can answer them with a
 * WebSocket auto-response without waking up.
 */
export const HEARTBEAT_FRAME = encode({ type: "heartbeat", payload: {} });
export const HEARTBEAT_ACK_FRAME = encode({ type: "heartbeat_ack", payload: {} });
