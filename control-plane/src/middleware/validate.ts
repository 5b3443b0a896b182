import type { Context } from "hono";
import type { z } from "zod";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { settingsOf } from "../settings.ts";

/** Turns the first zod issue into a 400 that names the field and the problem. */
function validationError(error: z.ZodError, prefix = ""): AppError {
  const issue = error.issues[0];
  const path = issue?.path.map(String) ?? [];
  const field = [prefix, ...path].filter(Boolean).join(".");
  return new AppError("validation_failed", `${field || "body"}: ${issue?.message ?? "invalid"}`, field || undefined);
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, prefix = ""): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationError(result.error, prefix);
  return result.data;
}

/** Reads a JSON body within the size limit and validates it; never a 5xx for any input. */
export async function jsonBody<S extends z.ZodType>(c: Context<AppEnv>, schema: S): Promise<z.infer<S>> {
  const limit = settingsOf(c.env).MAX_BODY_BYTES;
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > limit) throw new AppError("payload_too_large", `the body is larger than ${limit} bytes`);
  const text = await c.req.text();
  if (new TextEncoder().encode(text).length > limit) throw new AppError("payload_too_large", `the body is larger than ${limit} bytes`);
  let json: unknown;
  try {
    json = text.length ? JSON.parse(text) : {};
  } catch {
    throw new AppError("validation_failed", "the body is not valid JSON");
  }
  return parseWith(schema, json);
}
