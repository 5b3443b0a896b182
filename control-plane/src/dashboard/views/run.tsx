/** @jsxImportSource hono/jsx */
import type { FC } from "hono/jsx";
import type { Session } from "../session.ts";
import { RunOutput } from "./jobs.tsx";
import { Layout, type Flash } from "./parts.tsx";
import type { JobDetail, LogPage } from "./types.ts";

export const DEFAULT_SCRIPT = `import platform, sys

print("Hello from", platform.node())
print("Python", sys.version.split()[0])
print("sum of 0..999999 =", sum(range(1_000_000)))
`;

export interface RunForm {
  script: string;
  pool: string;
  timeout_s: string;
  memory_mb: string;
}

export const DEFAULT_RUN_FORM: RunForm = { script: DEFAULT_SCRIPT, pool: "default", timeout_s: "300", memory_mb: "512" };

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

/** Seed 003's "Colab-lite": write Python, run it on the grid, watch its output. */
export const RunPage: FC<{ session: Session; form: RunForm; pools: string[]; job?: JobDetail | undefined; log?: LogPage | undefined; flash?: Flash }> = (p) => (
  <Layout title="Run Python" session={p.session} current="run" flash={p.flash}>
    <h1>Run Python</h1>
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
    <section class="card" aria-labelledby="output-title">
      <h2 id="output-title">Output</h2>
      <div id="run-result">
        <RunResult job={p.job} log={p.log} />
      </div>
    </section>
  </Layout>
);
