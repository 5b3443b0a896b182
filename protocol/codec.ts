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
 * Parses and validates one frame against a message set. Never throws: a peer may be out
 * of date or hostile, and a bad frame must not take down the connection's handler.
 *
 * @example
 * const r = decode(raw, AgentToCoordinator);
 * if (!r.ok) ws.send(encode({ type: "error", payload: { code: r.code, message: r.message } }));
 */
export function decode<S extends z.ZodType<Message>>(raw: string, schema: S): DecodeResult<z.infer<S>> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, code: ErrorCode.badMessage, message: "frame is not JSON" };
  }
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
