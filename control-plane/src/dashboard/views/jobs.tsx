/** @jsxImportSource hono/jsx */
import type { FC } from "hono/jsx";
import { JobStatus, JUPYTER_PORT, TERMINAL_STATUSES, type JobTask } from "../../../../protocol/index.ts";
import { Ago, between, EmptyState, formatBytes, formatDuration, Layout, LiveRegion, StatusBadge, Time, uiHref, type Flash, type Viewer } from "./parts.tsx";
import type { Attempt, JobDetail, JobSummary, LogLine, LogPage } from "./types.ts";
import { arrayHref, attemptBudget, AttemptsTable, Dependencies, retryText, usageText } from "./workflows.tsx";

/** How often open pages refresh while something can still change. */
export const LIST_REFRESH_MS = 2000;
export const JOB_REFRESH_MS = 1000;

export const isTerminal = (status: string) => (TERMINAL_STATUSES as readonly string[]).includes(status);
const enc = encodeURIComponent;
export const jobHref = (id: string) => `/ui/jobs/${enc(id)}`;
export const artifactHref = (id: string, name: string) => `${jobHref(id)}/artifacts/${name.split("/").map(enc).join("/")}`;

/** What a job ended with, in a few words: `exit 0`, `timeout`, `exit 3 (exit_code)`. */
function outcome(job: { status: string; exit_code: number | null; failure_reason: string | null }): string {
  if (job.status === "completed") return `exit ${job.exit_code ?? 0}`;
  if (job.status === "failed") return job.failure_reason === "exit_code" ? `exit ${job.exit_code}` : (job.failure_reason ?? "failed");
  if (job.status === "canceled") return "canceled";
  return "";
}

export interface JobListQuery {
  project?: string | undefined;
  status?: JobStatus | undefined;
  pool?: string | undefined;
  /** Only the tasks of this array. */
  array?: string | undefined;
  cursor?: string | undefined;
}

/** A job's `key=value` tags as a list. */
export const Tags: FC<{ tags: string[] }> = ({ tags }) =>
  tags.length === 0 ? (
    <span class="muted">—</span>
  ) : (
    <ul class="labels">
      {tags.map((t) => (
        <li>
          <code>{t}</code>
        </li>
      ))}
    </ul>
  );

export const JobTable: FC<{ jobs: JobSummary[]; nextCursor: string | null; query: JobListQuery; now: number }> = ({ jobs, nextCursor, query, now }) => (
  <LiveRegion src={query.cursor ? null : uiHref("/ui/live/jobs", { project: query.project, status: query.status, pool: query.pool, array: query.array })} every={LIST_REFRESH_MS} id="jobs-live">
    {jobs.length === 0 ? (
      <EmptyState>
        No jobs{query.project ? ` in project ${query.project}` : ""}
        {query.status ? ` with status ${query.status}` : ""}
        {query.pool ? ` in pool ${query.pool}` : ""}
        {query.array ? ` in array ${query.array}` : ""}.
      </EmptyState>
    ) : (
      <table class="grid jobs">
        <caption class="sr-only">Jobs, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">Status</th>
            <th scope="col">Project</th>
            <th scope="col">Tags</th>
            <th scope="col">By</th>
            <th scope="col">Kind</th>
            <th scope="col">Pool</th>
            <th scope="col">Submitted</th>
            <th scope="col">Ran for</th>
            <th scope="col">Result</th>
          </tr>
        </thead>
        <tbody>
          {jobs.map((j) => {
            const ran = between(j.started_at, j.finished_at);
            return (
              <tr>
                <td data-label="Job">
                  <a href={jobHref(j.id)}>{j.name ? <strong>{j.name}</strong> : <code>{j.id}</code>}</a>
                  {j.name && (
                    <small class="muted block">
                      <code>{j.id}</code>
                    </small>
                  )}
                </td>
                <td data-label="Status">
                  <StatusBadge status={j.status} />
                </td>
                <td data-label="Project" class="nowrap">{j.project}</td>
                <td data-label="Tags">
                  <Tags tags={j.tags} />
                </td>
                <td data-label="By">{j.submitted_by}</td>
                <td data-label="Kind">{j.kind}</td>
                <td data-label="Pool" class="nowrap">{j.pool}</td>
                <td data-label="Submitted">
                  <Ago iso={j.created_at} now={now} />
                </td>
                <td data-label="Ran for">{ran === null ? <span class="muted">—</span> : formatDuration(ran)}</td>
                <td data-label="Result">{outcome(j) || <span class="muted">—</span>}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    )}
    {nextCursor && (
      <p class="pager">
        <a href={uiHref("/ui/jobs", { project: query.project, status: query.status, pool: query.pool, array: query.array, cursor: nextCursor })}>Older jobs</a>
      </p>
    )}
  </LiveRegion>
);

export const JobsPage: FC<{ viewer: Viewer; jobs: JobSummary[]; nextCursor: string | null; query: JobListQuery; now: number; flash?: Flash }> = (p) => (
  <Layout title="Jobs" viewer={p.viewer} current="jobs" flash={p.flash}>
    <h1>{p.query.array ? `Tasks of array ${p.query.array}` : p.query.project ? `Jobs in ${p.query.project}` : "Jobs in all your projects"}</h1>
    <nav aria-label="Filter by status" class="filters">
      <ul>
        {[undefined, ...JobStatus.options].map((s) => (
          <li>
            <a href={uiHref("/ui/jobs", { project: p.query.project, status: s, pool: p.query.pool })} aria-current={p.query.status === s ? "page" : undefined}>
              {s ?? "all"}
            </a>
          </li>
        ))}
      </ul>
    </nav>
    <form method="get" action="/ui/jobs" class="inline" role="search" aria-label="Filter jobs by pool">
      {p.query.project && <input type="hidden" name="project" value={p.query.project} />}
      {p.query.status && <input type="hidden" name="status" value={p.query.status} />}
      {p.query.array && <input type="hidden" name="array" value={p.query.array} />}
      <label for="pool-filter">Pool</label>
      <input id="pool-filter" name="pool" value={p.query.pool ?? ""} placeholder="any pool" />
      <button type="submit">Filter</button>
    </form>
    <JobTable jobs={p.jobs} nextCursor={p.nextCursor} query={p.query} now={p.now} />
  </Layout>
);

type TimelineEvent = { at: string; label: string; detail?: string | undefined; status?: string | undefined };

/** A job's life as events: submitted, then each attempt's queue/assign/start/end, then its end. */
export function timeline(job: JobDetail, attempts: Attempt[]): TimelineEvent[] {
  const events: TimelineEvent[] = [{ at: job.created_at!, label: "Submitted", detail: `to pool ${job.pool}` }];
  for (const a of attempts) {
    const worker = a.worker_name ?? a.worker_id;
    if (a.attempt > 1) events.push({ at: a.queued_at, label: `Queued again for attempt ${a.attempt}` });
    const wait = between(a.queued_at, a.assigned_at);
    events.push({ at: a.assigned_at, label: `Attempt ${a.attempt} assigned`, detail: `to worker ${worker}${wait === null ? "" : `, ${formatDuration(wait)} after queueing`}` });
    if (a.started_at) {
      const startWait = between(a.queued_at, a.started_at);
      events.push({ at: a.started_at, label: `Attempt ${a.attempt} started`, detail: startWait === null ? undefined : `waited ${formatDuration(startWait)} in all` });
    }
    if (a.finished_at) {
      const ran = between(a.started_at, a.finished_at);
      const how = a.status === "lost" ? "lost its worker" : a.failure_reason && a.failure_reason !== "exit_code" ? a.failure_reason : a.exit_code === null ? a.status : `exit code ${a.exit_code}`;
      events.push({ at: a.finished_at, label: `Attempt ${a.attempt} ended`, detail: `${how}${ran === null ? "" : ` after ${formatDuration(ran)}`}` });
    }
  }
  if (isTerminal(job.status) && job.finished_at) {
    events.push({ at: job.finished_at, label: `Job ${job.status}`, status: job.status, detail: job.failure_message ?? undefined });
  }
  return events.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}

const Timeline: FC<{ job: JobDetail; attempts: Attempt[] }> = ({ job, attempts }) => (
  <ol class="timeline">
    {timeline(job, attempts).map((e) => (
      <li class={e.status ? `end s-${e.status}` : undefined}>
        <Time iso={e.at} />
        <span class="what">{e.label}</span>
        {e.detail && <span class="detail">{e.detail}</span>}
      </li>
    ))}
    {!isTerminal(job.status) && (
      <li class="now">
        <span class="what">{job.status === "queued" ? "Waiting for a worker…" : job.status === "assigned" ? "Starting…" : "Running…"}</span>
      </li>
    )}
  </ol>
);

/**
 * Status, result, attempts, dependencies, timeline and artifacts: the part of the job page that
 * refreshes while the job runs. `canAct` (cancel, rerun) is false for a viewer (the API would
 * refuse them anyway).
 */
export const JobLive: FC<{ job: JobDetail; attempts: Attempt[]; canAct: boolean }> = ({ job, attempts, canAct }) => {
  const done = isTerminal(job.status);
  const spec = job.spec as { task?: { kind?: string }; ports?: { port: number }[] } | null;
  // Anyone who reads the job may open its ports (the API checks the same): only while it runs.
  const ports = job.status === "running" ? (spec?.ports ?? []) : [];
  return (
    <LiveRegion src={done ? null : `/ui/live/jobs/${enc(job.id)}`} every={JOB_REFRESH_MS} events={`/ui/live/jobs/${enc(job.id)}/events`} id="job-live" class="job-live">
      <section class="card" aria-labelledby="summary-title">
        <h2 id="summary-title">Summary</h2>
        <p id="job-status" class="status-line" role="status" aria-live="polite">
          <StatusBadge status={job.status} />
          {done && <span class="outcome">{outcome(job)}</span>}
        </p>
        <dl class="facts">
          <div>
            <dt>Exit code</dt>
            <dd id="job-exit-code">{job.exit_code ?? <span class="muted">—</span>}</dd>
          </div>
          {job.pending_reason && (
            <div>
              <dt>Waiting</dt>
              <dd id="job-pending">{job.pending_reason}</dd>
            </div>
          )}
          {job.retry_at && (
            <div>
              <dt>Retries at</dt>
              <dd>
                <Time iso={job.retry_at} />
              </dd>
            </div>
          )}
          <div>
            <dt>Failure reason</dt>
            <dd id="job-failure">{job.failure_reason ? `${job.failure_reason}${job.failure_message ? `: ${job.failure_message}` : ""}` : <span class="muted">—</span>}</dd>
          </div>
          <div>
            <dt>Project</dt>
            <dd>{job.project}</dd>
          </div>
          <div>
            <dt>Submitted by</dt>
            <dd id="job-submitted-by">{job.submitted_by}</dd>
          </div>
          <div>
            <dt>Tags</dt>
            <dd>
              <Tags tags={job.tags} />
            </dd>
          </div>
          <div>
            <dt>Pool</dt>
            <dd>{job.pool}</dd>
          </div>
          <div>
            <dt>Kind</dt>
            <dd>{spec?.task?.kind ?? job.kind}</dd>
          </div>
          <div>
            <dt>Worker</dt>
            <dd>{job.worker_id ? (attempts.find((a) => a.attempt === job.attempt)?.worker_name ?? job.worker_id) : <span class="muted">—</span>}</dd>
          </div>
          <div>
            <dt>Attempt</dt>
            <dd id="job-attempt">
              {job.attempt} of at most {attemptBudget(job)}
            </dd>
          </div>
          {job.retry && (
            <div>
              <dt>Retries</dt>
              <dd>{retryText(job.retry)}</dd>
            </div>
          )}
          <div>
            <dt>Usage</dt>
            <dd id="job-usage">{job.usage ? usageText(job.usage) : <span class="muted">—</span>}</dd>
          </div>
          {job.array_id && (
            <div>
              <dt>Array</dt>
              <dd>
                task {job.array_index} of <a href={arrayHref(job.array_id)}>{job.array_id}</a>
              </dd>
            </div>
          )}
          {job.rerun_of && (
            <div>
              <dt>Rerun of</dt>
              <dd>
                <a href={jobHref(job.rerun_of)}>{job.rerun_of}</a>
              </dd>
            </div>
          )}
          <div>
            <dt>Limits</dt>
            <dd>
              {formatDuration(job.limits.timeout_s * 1000)}, {job.limits.memory_mb} MiB, {job.limits.cpus} CPU
            </dd>
          </div>
          <div>
            <dt>Priority</dt>
            <dd>{job.priority}</dd>
          </div>
        </dl>
        {ports.length > 0 && (
          <div class="actions">
            {ports.map(({ port }) => (
              // A new tab: the post makes a one-time link with this session's credentials and the tab follows it to the port.
              <form method="post" action={`/ui/jobs/${enc(job.id)}/ports/${port}/open`} target="_blank" rel="noopener">
                <button type="submit" class="primary">
                  {spec?.task?.kind === "jupyter" && port === JUPYTER_PORT ? "Open Jupyter" : `Open port ${port}`}
                </button>
              </form>
            ))}
          </div>
        )}
        {canAct && (
          <div class="actions">
            {!done && (
              <form method="post" action={`/ui/jobs/${enc(job.id)}/cancel`}>
                <button type="submit" class="danger">
                  Cancel job
                </button>
              </form>
            )}
            <form method="post" action={`/ui/jobs/${enc(job.id)}/rerun`}>
              <button type="submit">Rerun</button>
            </form>
          </div>
        )}
      </section>
      <section class="card" aria-labelledby="attempts-title">
        <h2 id="attempts-title">Attempts</h2>
        <AttemptsTable attempts={job.attempts} />
      </section>
      {(job.parents.length > 0 || job.children.length > 0) && <Dependencies job={job} />}
      <section class="card" aria-labelledby="timeline-title">
        <h2 id="timeline-title">Timeline</h2>
        <Timeline job={job} attempts={attempts} />
      </section>
      <section class="card" aria-labelledby="artifacts-title">
        <h2 id="artifacts-title">Artifacts</h2>
        {job.artifacts.length === 0 ? (
          <EmptyState>{done ? "This job left no artifacts." : "Files the job writes to /work/output appear here when it finishes."}</EmptyState>
        ) : (
          <table class="grid artifacts">
            <caption class="sr-only">Artifacts of attempt {job.attempt}</caption>
            <thead>
              <tr>
                <th scope="col">File</th>
                <th scope="col">Size</th>
                <th scope="col">SHA-256</th>
              </tr>
            </thead>
            <tbody>
              {job.artifacts.map((a) => (
                <tr>
                  <td data-label="File">
                    <a href={artifactHref(job.id, a.name)} download={a.name.split("/").at(-1)}>
                      {a.name}
                    </a>
                  </td>
                  <td data-label="Size">{formatBytes(a.size)}</td>
                  <td data-label="SHA-256">
                    <code class="hash" title={a.sha256}>
                      {a.sha256.slice(0, 16)}…
                    </code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </LiveRegion>
  );
};

/** Log lines as the log panel shows them; stderr and gridx's own lines are marked. */
export const LogLines: FC<{ lines: LogLine[] }> = ({ lines }) => (
  <>
    {lines.map((l) => (
      <span class={`ln ${l.stream}`}>{l.text + "\n"}</span>
    ))}
  </>
);

/**
 * A log panel: the newest lines (LOG_TAIL_BYTES of them at most, with a link to the whole log),
 * then, while the job runs, every line as the agent sends it.
 */
export const LogPanel: FC<{ jobId: string; page: LogPage; label: string }> = ({ jobId, page, label }) => {
  const done = isTerminal(page.status);
  return (
    <>
      <p class="hint">
        Showing the newest lines. <a href={`/ui/jobs/${enc(jobId)}/log.txt`}>Whole log</a>
      </p>
      <pre
        class="log"
        tabindex={0}
        role="region"
        aria-label={label}
        data-stream={done ? undefined : `/ui/live/jobs/${enc(jobId)}/log`}
        data-after={page.next_cursor ?? undefined}
        data-done={done ? "1" : undefined}
      >
        <LogLines lines={page.lines} />
      </pre>
    </>
  );
};

/** What the job was asked to run: the Python script, the image and argv, or the repo commits and argv. */
const TaskView: FC<{ spec: unknown; resolved?: JobDetail["resolved"] }> = ({ spec, resolved }) => {
  const task = (spec as { task?: JobTask } | null)?.task;
  if (task?.kind === "python") return <pre class="code">{task.python.script}</pre>;
  if (task?.kind === "repo")
    return (
      <dl class="facts">
        <div>
          <dt>Code</dt>
          <dd>
            <code>{task.repo.code_repo_url}</code> @ <code>{resolved?.code_commit_id ?? task.repo.code_commit_id}</code>
          </dd>
        </div>
        <div>
          <dt>Environment</dt>
          <dd>
            <code>{task.repo.env_repo_url}</code> @ <code>{resolved?.env_commit_id ?? task.repo.env_commit_id}</code> (<code>{task.repo.dockerfile_path}</code>)
          </dd>
        </div>
        <div>
          <dt>Command</dt>
          <dd>
            <code>{JSON.stringify(task.command)}</code>
          </dd>
        </div>
      </dl>
    );
  if (task?.kind === "command")
    return (
      <p>
        <code>{task.command.image}</code> <code>{JSON.stringify(task.command.argv)}</code>
      </p>
    );
  return <pre class="code">{JSON.stringify(task ?? spec, null, 2)}</pre>;
};

export const JobPage: FC<{ viewer: Viewer; job: JobDetail; attempts: Attempt[]; log: LogPage; canAct: boolean; flash?: Flash }> = ({ viewer, job, attempts, log, canAct, flash }) => (
  <Layout title={`Job ${job.id}`} viewer={viewer} current="jobs" flash={flash}>
    <p class="crumbs">
      <a href={uiHref("/ui/jobs", { project: job.project })}>Jobs in {job.project}</a> /
    </p>
    <h1>
      Job <code>{job.id}</code>
      {job.name && <span class="subtitle">{job.name}</span>}
    </h1>
    <div class="columns">
      <JobLive job={job} attempts={attempts} canAct={canAct} />
      <div>
        <section class="card" aria-labelledby="log-title">
          <h2 id="log-title">Log</h2>
          <LogPanel jobId={job.id} page={log} label={`Log of job ${job.id}`} />
        </section>
        <section class="card" aria-labelledby="task-title">
          <h2 id="task-title">Task</h2>
          <TaskView spec={job.spec} resolved={job.resolved} />
        </section>
      </div>
    </div>
  </Layout>
);

/** The run page's output: a status line that follows the job, and its log. */
export const RunStatus: FC<{ job: JobDetail }> = ({ job }) => {
  const done = isTerminal(job.status);
  const ran = between(job.started_at, job.finished_at);
  return (
    <LiveRegion src={done ? null : `/ui/live/runs/${enc(job.id)}`} every={JOB_REFRESH_MS} class="run-status">
      <p id="run-status" class="status-line" role="status" aria-live="polite">
        <StatusBadge status={job.status} />
        {done ? (
          <span>
            {job.exit_code !== null ? `exit code ${job.exit_code}` : outcome(job)}
            {job.failure_reason && job.failure_reason !== "exit_code" ? ` (${job.failure_reason})` : ""}
            {ran !== null ? ` after ${formatDuration(ran)}` : ""}
          </span>
        ) : (
          <span>{job.status === "queued" ? "waiting for a worker" : job.status === "assigned" ? "starting" : "running"}</span>
        )}
      </p>
    </LiveRegion>
  );
};

export const RunOutput: FC<{ job: JobDetail; log: LogPage }> = ({ job, log }) => (
  <div class="run-output" data-job-id={job.id}>
    <RunStatus job={job} />
    <LogPanel jobId={job.id} page={log} label={`Output of job ${job.id}`} />
    <p class="more">
      <a href={jobHref(job.id)}>
        Details of job <code>{job.id}</code>
      </a>
    </p>
  </div>
);
