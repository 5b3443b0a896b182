import type { Hook } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { z } from "zod";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { settingsOf } from "../settings.ts";

/** Turns the first zod issue into a 400 that names the field and the problem. */
function validationError(error: z.ZodError, prefix = ""): AppError {
  const issue = error.issues[0];
  // An unknown key is named by the key itself, so the client sees which one to drop.
  const path = [...(issue?.path.map(String) ?? []), ...(issue?.code === "unrecognized_keys" ? issue.keys.slice(0, 1) : [])];
  const field = [prefix, ...path].filter(Boolean).join(".");
  return new AppError("validation_failed", `${field || "body"}: ${issue?.message ?? "invalid"}`, field || undefined);
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, prefix = ""): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationError(result.error, prefix);
  return result.data;
}

/**
 * The `defaultHook` of every OpenAPI router: a request that fails its route's zod schema
 * (body, query, path or header) is answered with the API's error shape, naming the field.
 *
 * @example
 * new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
 */
export const validationHook: Hook<unknown, AppEnv, string, void> = function validationHook(result) {
  if (!result.success) throw validationError(result.error);
};

const BODY_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const JSON_TYPE = /^application\/([a-z-.]+\+)?json\s*(;|$)/i;

/**
 * Reads a request body within the size limit and checks that it is JSON before the route's
 * validator sees it, so every input gets a 4xx in the API's error shape: 413 over
 * `MAX_BODY_BYTES`, 400 for text that is not JSON or a body sent as something else. An empty
 * body stands for `{}`.
 */
export const jsonBodyGuard: MiddlewareHandler<AppEnv> = async function jsonBodyGuard(c, next) {
  if (!BODY_METHODS.has(c.req.method)) return next();
  const limit = settingsOf(c.env).MAX_BODY_BYTES;
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > limit) throw new AppError("payload_too_large", `the body is larger than ${limit} bytes`);
  const raw = await c.req.arrayBuffer();
  if (raw.byteLength > limit) throw new AppError("payload_too_large", `the body is larger than ${limit} bytes`);
  const type = c.req.header("content-type");
  if (!raw.byteLength) {
    // An empty JSON body stands for an empty object. The route's validator parses the body
    // Hono cached when it was read above (a promise, whatever `BodyCache` declares); the
    // OpenAPI test "takes an empty JSON body as {}" guards this against Hono upgrades.
    if (type && JSON_TYPE.test(type)) (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve("{}");
    return next();
  }
  if (!type || !JSON_TYPE.test(type)) {
    throw new AppError("validation_failed", "send the body as JSON with `Content-Type: application/json`", "Content-Type");
  }
  try {
    JSON.parse(new TextDecoder().decode(raw));
  } catch {
    throw new AppError("validation_failed", "the body is not valid JSON");
  }
  return next();
};
