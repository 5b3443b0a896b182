/** @jsxImportSource hono/jsx */
import type { FC } from "hono/jsx";
import { RunOutput } from "./jobs.tsx";
import { EmptyState, Layout, type Flash, type Viewer } from "./parts.tsx";
import type { JobDetail, LogPage } from "./types.ts";

export const DEFAULT_SCRIPT = `import platform, sys

print("Hello from", platform.node())
print("Python", sys.version.split()[0])
print("sum of 0..999999 =", sum(range(1_000_000)))
`;

export interface RunForm {
  script: string;
  project: string;
  pool: string;
  name: string;
  /** `key=value` tags, separated by spaces or commas. */
  tags: string;
  timeout_s: string;
  memory_mb: string;
}

export const DEFAULT_RUN_FORM: RunForm = { script: DEFAULT_SCRIPT, project: "", pool: "default", name: "", tags: "", timeout_s: "300", memory_mb: "512" };

/** The output panel's content: a job's live output, a submit error, or a hint. */
export const RunResult: FC<{ job?: JobDetail | undefined; log?: LogPage | undefined; error?: string | undefined }> = ({ job, log, error }) => {
  if (error)
    return (
      <p class="error" role="alert">
        {error}
      </p>
    );
  if (job && log) return <RunOutput job={job} log={log} />;
  return <p class="empty">Run the code to see what it prints here.</p>;
};

/**
 * Seed 003's "Colab-lite": write Python, run it on the grid, watch its output. `projects` are
 * those the viewer may submit to (member or owner); with none, there is no form to submit.
 */
export const RunPage: FC<{ viewer: Viewer; form: RunForm; projects: string[]; pools: string[]; job?: JobDetail | undefined; log?: LogPage | undefined; flash?: Flash }> = (p) => (
  <Layout title="Run Python" viewer={p.viewer} current="run" flash={p.flash}>
    <h1>Run Python</h1>
    {p.projects.length === 0 ? (
      <EmptyState>Running jobs needs the member role in a project; you are not a member or owner of any.</EmptyState>
    ) : (
      <RunFormView form={p.form} projects={p.projects} pools={p.pools} />
    )}
    <section class="card" aria-labelledby="output-title">
      <h2 id="output-title">Output</h2>
      <div id="run-result">
        <RunResult job={p.job} log={p.log} />
      </div>
    </section>
  </Layout>
);

const RunFormView: FC<{ form: RunForm; projects: string[]; pools: string[] }> = (p) => (
    <form method="post" action="/ui/run" class="run" data-run="">
      <label for="script">Python code</label>
      <p id="script-help" class="hint">
        Runs with Python 3.11 in a sandbox without network; files written to <code>/work/output</code> become artifacts. Tab indents; press Esc, then
        Tab, to leave the editor; Ctrl+Enter (⌘+Enter) runs.
      </p>
      <textarea id="script" name="script" rows={14} spellcheck={false} autocapitalize="off" required aria-describedby="script-help" data-editor="">
        {p.form.script}
      </textarea>
      <div class="run-options">
        <div class="field">
          <label for="run-project">Project</label>
          <select id="run-project" name="project" required>
            {p.projects.map((name) => (
              <option value={name} selected={name === p.form.project}>
                {name}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="run-name">Name</label>
          <input id="run-name" name="name" value={p.form.name} maxlength={200} placeholder="optional" />
        </div>
        <div class="field">
          <label for="run-tags">Tags</label>
          <input id="run-tags" name="tags" value={p.form.tags} placeholder="key=value, …" aria-describedby="run-tags-help" />
          <small id="run-tags-help" class="hint">
            up to 16 <code>key=value</code>
          </small>
        </div>
        <div class="field">
          <label for="run-pool">Pool</label>
          <input id="run-pool" name="pool" value={p.form.pool} list="pool-names" required />
          <datalist id="pool-names">
            {p.pools.map((name) => (
              <option value={name} />
            ))}
          </datalist>
        </div>
        <div class="field">
          <label for="run-timeout">Timeout (seconds)</label>
          <input id="run-timeout" name="timeout_s" type="number" inputmode="numeric" min="1" max="604800" value={p.form.timeout_s} required />
        </div>
        <div class="field">
          <label for="run-memory">Memory (MiB)</label>
          <input id="run-memory" name="memory_mb" type="number" inputmode="numeric" min="16" value={p.form.memory_mb} required />
        </div>
        <button type="submit" class="primary" id="run-button">
          Run
        </button>
      </div>
    </form>
);
