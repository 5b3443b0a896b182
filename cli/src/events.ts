import type { JobEvent, JobStatus } from "../../protocol/index.ts";
import type { ApiClient } from "./api.ts";
import { followStream } from "./follow.ts";

export type { JobEvent };

const TERMINAL: ReadonlySet<JobStatus> = new Set(["completed", "failed", "canceled"]);
export const isTerminal = (status: JobStatus) => TERMINAL.has(status);

/** Which events to follow: one job's, or a project's. */
export type EventFilter = { job: string } | { project: string };

/**
 * Follows the events stream (`GET /v1/events`, SSE `event: job`) in order, each event once
 * across reconnects and the server's `resume`, until `onEvent` returns a value; resolves with
 * it. `opened` is asked whenever the stream opens without a cursor (see followStream).
 *
 * @example
 * const last = await followEvents(api, { project: "lab" }, (e) => (e.type === "job.failed" ? e : undefined));
 */
export function followEvents<T>(
  api: ApiClient,
  filter: EventFilter,
  onEvent: (event: JobEvent) => T | undefined,
  opts: { signal?: AbortSignal; after?: string; opened?: () => Promise<T | undefined> } = {},
): Promise<T> {
  const what = "job" in filter ? `job ${filter.job}` : `project ${filter.project}`;
  const opened = opts.opened;
  return followStream<T>(
    {
      open: (after, signal) =>
        api.ok(api.rpc.v1.events.$get({ query: { ...filter, ...(after ? { after } : {}) } }, { init: { signal } }), { notFound: "job" in filter ? "list jobs with `gridx list`" : "see `gridx projects`" }),
      ...(opened && { opened: async () => wrap(await opened()) }),
      onEvent: (ev) => (ev.event === "job" ? wrap(onEvent(JSON.parse(ev.data) as JobEvent)) : undefined),
      what: `the events stream of ${what}`,
      again: "job" in filter ? `see where it is with \`gridx status ${filter.job}\`` : `see its jobs with \`gridx list --project ${filter.project}\``,
    },
    opts,
  );
}

const wrap = <T>(value: T | undefined) => (value === undefined ? undefined : { done: value });

/**
 * Waits for a job to end, pushed by the events stream (no polling): resolves with its status
 * then. `current` reads the job's status once whenever the stream opens without a cursor,
 * since the job may have ended before the stream began. `onChange` sees each change on the way.
 */
export function waitForJobEnd(api: ApiClient, id: string, current: () => Promise<JobStatus>, opts: { signal?: AbortSignal; onChange?: (event: JobEvent) => void } = {}): Promise<JobStatus> {
  return followEvents<JobStatus>(
    api,
    { job: id },
    (event) => {
      if (event.job_id !== id) return undefined;
      opts.onChange?.(event);
      return isTerminal(event.status) ? event.status : undefined;
    },
    {
      signal: opts.signal,
      opened: async () => {
        const status = await current();
        return isTerminal(status) ? status : undefined;
      },
    },
  );
}
