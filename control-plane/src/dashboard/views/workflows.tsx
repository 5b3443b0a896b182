/** @jsxImportSource hono/jsx */
import type { FC } from "hono/jsx";
import { JobStatus } from "../../../../protocol/index.ts";
import { jobHref } from "./jobs.tsx";
import { EmptyState, formatDuration, formatMemoryMb, Layout, StatusBadge, Time, uiHref, type Flash, type Viewer } from "./parts.tsx";
import type { ArraySummary, JobAttempt, JobDetail, JobRelative, Schedule } from "./types.ts";

/*
 * The workflow parts of the dashboard: a job's attempts with their usage, the jobs it waits for
 * and that wait for it, an array's progress, and the schedules list.
 */

const enc = encodeURIComponent;
export const arrayHref = (id: string) => `/ui/arrays/${enc(id)}`;

type Usage = NonNullable<JobDetail["usage"]>;

/** `3.2 s CPU · 512 MiB peak · 0 ms GPU · 4.1 s wall`. */
export const usageText = (u: Usage) => `${formatDuration(u.cpu_s * 1000)} CPU · ${formatMemoryMb(Math.round(u.peak_memory_mb))} peak · ${formatDuration(u.gpu_s * 1000)} GPU · ${formatDuration(u.wall_s * 1000)} wall`;

/** How one attempt ended: `running`, `exit 0`, `exit 3`, `oom`, `worker lost`. */
export function attemptOutcome(a: Pick<JobAttempt, "status" | "exit_code" | "failure_reason">): string {
  if (a.status === "lost") return "worker lost";
  if (a.status !== "finished") return a.status;
  if (a.failure_reason && a.failure_reason !== "exit_code") return a.failure_reason;
  return a.exit_code === null ? "finished" : `exit ${a.exit_code}`;
}

/** How many attempts the job may make: a lost worker is retried under max_retries or the policy, whichever allows more. */
export const attemptBudget = (job: Pick<JobDetail, "max_retries" | "retry">) => Math.max(job.max_retries, job.retry?.max ?? 0) + 1;

/** What the retry policy retries, in a few words: `exit_code 3,4, oom; up to 3, after 10 s doubling`. */
export function retryText(retry: NonNullable<JobDetail["retry"]>): string {
  const on = retry.on.map((o) => (o === "exit_code" && retry.exit_codes ? `exit_code ${retry.exit_codes.join(",")}` : o)).join(", ");
  return `${on}; up to ${retry.max}, after ${formatDuration(retry.backoff_s * 1000)} doubling`;
}

export const AttemptsTable: FC<{ attempts: JobAttempt[] }> = ({ attempts }) =>
  attempts.length === 0 ? (
    <EmptyState>No attempt yet.</EmptyState>
  ) : (
    <table class="grid attempts">
      <caption class="sr-only">Attempts, first to latest</caption>
      <thead>
        <tr>
          <th scope="col">Attempt</th>
          <th scope="col">Worker</th>
          <th scope="col">Outcome</th>
          <th scope="col">Started</th>
          <th scope="col">Usage</th>
        </tr>
      </thead>
      <tbody>
        {attempts.map((a) => (
          <tr data-attempt={String(a.attempt)}>
            <td data-label="Attempt">{a.attempt}</td>
            <td data-label="Worker">{a.worker_name ?? a.worker_id}</td>
            <td data-label="Outcome">{attemptOutcome(a)}</td>
            <td data-label="Started">
              <Time iso={a.started_at} />
            </td>
            <td data-label="Usage">{a.usage ? usageText(a.usage) : <span class="muted">—</span>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );

const RelativeLink: FC<{ r: JobRelative }> = ({ r }) =>
  r.job.startsWith("a_") ? (
    <a href={arrayHref(r.job)}>
      array <code>{r.job}</code>
    </a>
  ) : (
    <a href={jobHref(r.job)}>
      <code>{r.job}</code>
    </a>
  );

const Relatives: FC<{ list: JobRelative[]; caption: string; none: string }> = ({ list, caption, none }) =>
  list.length === 0 ? (
    <EmptyState>{none}</EmptyState>
  ) : (
    <table class="grid relatives">
      <caption class="sr-only">{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Job</th>
          <th scope="col">Status</th>
          <th scope="col">Needs</th>
        </tr>
      </thead>
      <tbody>
        {list.map((r) => (
          <tr>
            <td data-label="Job">
              <RelativeLink r={r} />
            </td>
            <td data-label="Status">{r.status ? <StatusBadge status={r.status} /> : <span class="muted">—</span>}</td>
            <td data-label="Needs">{r.condition}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );

/** The jobs (and arrays) this one waits for, and those that wait for it, each with its status and linked. */
export const Dependencies: FC<{ job: Pick<JobDetail, "parents" | "children"> }> = ({ job }) => (
  <section class="card" aria-labelledby="deps-title" id="dependencies">
    <h2 id="deps-title">Dependencies</h2>
    <h3>Waits for</h3>
    <Relatives list={job.parents} caption="The jobs this one waits for" none="It waits for no other job." />
    <h3>Waited for by</h3>
    <Relatives list={job.children} caption="The jobs that wait for this one" none="No job waits for it." />
  </section>
);

const BAR_W = 1000;

/** An array's tasks as one bar, a segment per state, and the counts beside it. */
export const ArrayProgress: FC<{ a: Pick<ArraySummary, "count" | "counts"> }> = ({ a }) => {
  let x = 0;
  const states = JobStatus.options.filter((s) => a.counts[s] > 0);
  return (
    <figure class="progress">
      <svg viewBox={`0 0 ${BAR_W} 20`} preserveAspectRatio="none" role="img" aria-labelledby="progress-sum" focusable="false">
        {states.map((s) => {
          const w = (a.counts[s] / Math.max(1, a.count)) * BAR_W;
          const rect = <rect class={`bar ${s}`} x={x} y={0} width={w} height={20} />;
          x += w;
          return rect;
        })}
      </svg>
      <figcaption id="progress-sum">
        <ul class="counts">
          {states.map((s) => (
            <li data-state={s}>
              <StatusBadge status={s} /> {a.counts[s]}
            </li>
          ))}
        </ul>
      </figcaption>
    </figure>
  );
};

/** The array page: progress, the failed tasks (linked), and the cancel button for a member while tasks are unfinished. */
export const ArrayPage: FC<{ viewer: Viewer; a: ArraySummary; failed: { index: number; id: string }[]; canCancel: boolean; flash?: Flash }> = ({ viewer, a, failed, canCancel, flash }) => {
  const unfinished = a.counts.queued + a.counts.assigned + a.counts.running;
  return (
    <Layout title={`Array ${a.id}`} viewer={viewer} current="jobs" flash={flash}>
      <p class="crumbs">
        <a href={uiHref("/ui/jobs", { project: a.project })}>Jobs in {a.project}</a> /
      </p>
      <h1>
        Array <code>{a.id}</code>
        {a.name && <span class="subtitle">{a.name}</span>}
      </h1>
      <section class="card" aria-labelledby="array-title">
        <h2 id="array-title">Progress</h2>
        <p class="status-line" role="status">
          <StatusBadge status={a.status} />
          <span>
            {a.count} tasks, {a.counts.completed} completed
          </span>
        </p>
        <ArrayProgress a={a} />
        <dl class="facts">
          <div>
            <dt>Project</dt>
            <dd>{a.project}</dd>
          </div>
          <div>
            <dt>Pool</dt>
            <dd>{a.pool}</dd>
          </div>
          <div>
            <dt>Submitted by</dt>
            <dd>{a.submitted_by}</dd>
          </div>
          <div>
            <dt>Submitted</dt>
            <dd>
              <Time iso={a.created_at} />
            </dd>
          </div>
          <div>
            <dt>Task 0</dt>
            <dd>{a.first_job ? <a href={jobHref(a.first_job)}>{a.first_job}</a> : <span class="muted">—</span>}</dd>
          </div>
        </dl>
        {unfinished > 0 && canCancel && (
          <form method="post" action={`${arrayHref(a.id)}/cancel`} class="actions">
            <button type="submit" class="danger">
              Cancel array
            </button>
          </form>
        )}
      </section>
      <section class="card" aria-labelledby="failed-title">
        <h2 id="failed-title">Failed tasks</h2>
        {a.failed_indices.length === 0 ? (
          <EmptyState>No task failed.</EmptyState>
        ) : (
          <ul class="indices">
            {a.failed_indices.map((i) => {
              const task = failed.find((f) => f.index === i);
              return <li>{task ? <a href={jobHref(task.id)}>task {i}</a> : `task ${i}`}</li>;
            })}
          </ul>
        )}
        <p class="more">
          <a href={uiHref("/ui/jobs", { project: a.project, array: a.id })}>Every task of this array</a>
        </p>
      </section>
    </Layout>
  );
};

/** The schedules the viewer can read: cron, time zone, next run, paused. */
export const SchedulesPage: FC<{ viewer: Viewer; schedules: Schedule[]; project: string | undefined }> = ({ viewer, schedules, project }) => (
  <Layout title="Schedules" viewer={viewer} current="schedules">
    <h1>{project ? `Schedules in ${project}` : "Schedules in all your projects"}</h1>
    {schedules.length === 0 ? (
      <EmptyState>No schedules{project ? ` in project ${project}` : ""}. Create one with gridx schedules create.</EmptyState>
    ) : (
      <table class="grid schedules">
        <caption class="sr-only">Schedules</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Project</th>
            <th scope="col">Cron</th>
            <th scope="col">Next run</th>
            <th scope="col">Last run</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {schedules.map((s) => (
            <tr data-schedule={s.id}>
              <td data-label="Name">
                <strong>{s.name}</strong>
                <small class="muted block">
                  <code>{s.id}</code>
                </small>
              </td>
              <td data-label="Project">{s.project}</td>
              <td data-label="Cron">
                <code>{s.cron}</code> <small class="muted">{s.timezone}</small>
              </td>
              <td data-label="Next run">{s.paused ? <span class="muted">—</span> : <Time iso={s.next_run_at} />}</td>
              <td data-label="Last run">
                <Time iso={s.last_run_at} />
              </td>
              <td data-label="State">{s.paused ? <span class="badge s-canceled">paused</span> : <span class="badge s-running">active</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    )}
  </Layout>
);
