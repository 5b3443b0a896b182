import { SELF } from "cloudflare:test";
import { expect } from "vitest";
import { ADMIN } from "./helpers.ts";

/** Dashboard requests as a browser makes them, shared by the dashboard's test files. */
export const BASE = "http://gridx.test";
export const ORIGIN = { origin: BASE };

type UiInit = { cookie?: string; form?: Record<string, string> | URLSearchParams; headers?: Record<string, string>; method?: string; base?: string };

/** A dashboard request as a browser makes it: no redirects followed, the session cookie if any. */
export async function ui(path: string, init: UiInit = {}) {
  const headers = new Headers(init.headers);
  if (init.cookie) headers.set("cookie", init.cookie);
  let body: string | undefined;
  if (init.form) {
    headers.set("content-type", "application/x-www-form-urlencoded");
    body = new URLSearchParams(init.form).toString();
  }
  const res = await SELF.fetch((init.base ?? BASE) + path, { method: init.method ?? (init.form ? "POST" : "GET"), headers, body, redirect: "manual" });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Signs in through the form; resolves with the cookie to send back. */
export async function signIn(token = ADMIN, headers: Record<string, string> = {}): Promise<string> {
  const res = await ui("/ui/login", { form: { token, next: "/ui" }, headers: { ...ORIGIN, ...headers } });
  expect(res.status).toBe(303);
  const set = res.headers.get("set-cookie") ?? "";
  const pair = /^(gridx_session=[^;]+)/.exec(set);
  if (!pair) throw new Error(`no session cookie in ${set}`);
  return pair[1]!;
}

/** The session secret a cookie holds: what the dashboard sends the API as its bearer. */
export const secretOf = (cookie: string) => cookie.slice("gridx_session=".length);

