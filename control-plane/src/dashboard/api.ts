import type { Context } from "hono";
import { DetailedError, hc, parseResponse, type ClientResponse } from "hono/client";
import type { app as App } from "../app.ts";
import { clientAddress } from "../audit.ts";
import type { DashEnv } from "./session.ts";

type AppType = typeof App;
/** The public API as a typed client: every path, parameter and response type comes from the routes. */
export type Api = ReturnType<typeof hc<AppType>>;

/** In-process calls never leave the Worker; the host only has to parse. */
const INTERNAL_ORIGIN = "http://gridx.internal";

/** The browser's address, so the API's audit log says where a dashboard action came from. */
function forwarded(c: Context<DashEnv>): Record<string, string> {
  const ip = clientAddress(c);
  return ip ? { "cf-connecting-ip": ip } : {};
}

/**
 * The API, called in-process with the signed-in user's session secret as the bearer: the
 * same routes, auth, role checks and validation as any client gets, and no network hop.
 * `app` is imported lazily because it mounts this dashboard.
 *
 * @example
 * const api = await apiFor(c);
 * const job = await call(api.v1.jobs[":id"].$get({ param: { id } }));
 */
export async function apiFor(c: Context<DashEnv>): Promise<Api> {
  const { app } = await import("../app.ts");
  let ctx: typeof c.executionCtx | undefined;
  try {
    ctx = c.executionCtx;
  } catch {
    ctx = undefined;
  }
  return hc<AppType>(INTERNAL_ORIGIN, {
    fetch: (input: RequestInfo | URL, init?: RequestInit) => app.request(input, init, c.env, ctx),
    headers: { authorization: `Bearer ${c.var.session.secret}`, ...forwarded(c) },
  });
}

/** An API answer other than success, with the API's own error code and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The request field at fault, where the API named one. */
    readonly field?: string,
  ) {
    super(message);
  }
}

/**
 * The success body of a typed call; an error answer becomes an `ApiError` carrying the API's
 * `{error: {code, message}}`.
 */
export async function call<T extends ClientResponse<unknown>>(res: T | Promise<T>) {
  try {
    return await parseResponse(res);
  } catch (err) {
    if (!(err instanceof DetailedError)) throw err;
    const body = (err.detail as { data?: { error?: { code?: string; message?: string; field?: string } } } | undefined)?.data?.error;
    throw new ApiError(err.statusCode ?? 500, body?.code ?? "internal", body?.message ?? err.message, body?.field);
  }
}
