/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ApiError } from "./api.ts";
import type { DashEnv } from "./session.ts";
import { DONE_MESSAGES, type DoneCode, type Flash } from "./views/parts.tsx";

export const enc = encodeURIComponent;

export function page(c: Context<DashEnv>, node: HtmlEscapedString | Promise<HtmlEscapedString>, status: ContentfulStatusCode = 200) {
  return c.html(html`<!doctype html>${node}`, status);
}

/**
 * Parameters for routes whose query the API reads without a typed validator; their OpenAPI
 * schemas will type them.
 */
export const withQuery = <P extends object>(base: P, query: Record<string, string | undefined>) => ({ ...base, query });

export function flashFrom(c: Context<DashEnv>): Flash {
  const done = c.req.query("done");
  return { done: done && done in DONE_MESSAGES ? (done as DoneCode) : undefined };
}

export const statusStatus = (status: number): ContentfulStatusCode => (status >= 400 && status <= 599 ? (status as ContentfulStatusCode) : 500);

/**
 * Runs a change through the API. A refusal the page can explain is rendered by `explain` with
 * the API's message and status; a lost session, or a 404 for the resource itself (not for a
 * field, such as an unknown user to add), goes to the dashboard's error handler.
 */
export async function orExplain(work: () => Promise<Response>, explain: (message: string, status: ContentfulStatusCode) => Promise<Response>): Promise<Response> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401 && (err.status !== 404 || err.field)) return explain(err.message, statusStatus(err.status));
    throw err;
  }
}
