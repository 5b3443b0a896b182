/** @jsxImportSource hono/jsx */
import type { FC } from "hono/jsx";
import type { InstallLines } from "../install-lines.ts";
import { Layout, LiveRegion, formatMemoryMb, uiHref, type Flash, type Viewer } from "./parts.tsx";
import type { IssuedToken, Worker } from "./types.ts";

/** How often the page asks whether the new agent has joined. */
export const ONBOARDING_REFRESH_MS = 2000;

/** A block of text with a button that copies it (the button appears once the page script runs). */
const Copyable: FC<{ id: string; label: string; text: string; hint?: string }> = ({ id, label, text, hint }) => (
  <section class="copyable" aria-labelledby={`${id}-label`}>
    <h3 id={`${id}-label`}>{label}</h3>
    {hint && <p class="hint">{hint}</p>}
    <pre class="code">
      <code id={id}>{text}</code>
    </pre>
    <p class="copy-row">
      <button type="button" data-copy={id} hidden>
        Copy <span class="sr-only">{label}</span>
      </button>
      <span data-copy-status="" role="status" class="muted"></span>
    </p>
  </section>
);

export const OnboardingPage: FC<{ viewer: Viewer; pools: string[]; pool: string; name: string; flash?: Flash }> = ({ viewer, pools, pool, name, flash }) => (
  <Layout title="Add a worker" viewer={viewer} current="onboarding" flash={flash}>
    <h1>Add a worker</h1>
    <div class="card narrow-form">
      <p class="hint">Issue an agent token for a pool; the next page shows the commands that start an agent with it, and the worker as it joins.</p>
      <form method="post" action="/ui/onboarding" class="stack">
        <label for="onboard-pool">Pool</label>
        <input id="onboard-pool" name="pool" value={pool} list="known-pools" required maxlength={63} />
        <datalist id="known-pools">
          {pools.map((p) => (
            <option value={p} />
          ))}
        </datalist>
        <label for="onboard-name">Token name</label>
        <input id="onboard-name" name="name" value={name} required maxlength={100} />
        <button type="submit" class="primary">
          Issue agent token
        </button>
      </form>
    </div>
  </Layout>
);

/** Where the page polls for the worker that joins with this token. */
export const watchHref = (issued: Pick<IssuedToken, "id" | "pool">) => uiHref("/ui/live/onboarding", { token: issued.id, pool: issued.pool ?? undefined });

export const OnboardingIssuedPage: FC<{ viewer: Viewer; issued: IssuedToken; lines: InstallLines }> = ({ viewer, issued, lines }) => (
  <Layout title="Add a worker" viewer={viewer} current="onboarding">
    <h1>
      Add a worker <span class="subtitle">pool {issued.pool}</span>
    </h1>
    <div class="card">
      <p class="notice" role="status">
        Agent token <code>{issued.id}</code> ({issued.name}) issued for pool <strong>{issued.pool}</strong>. Its text is shown on this page only: copy a command now.
      </p>
      <Copyable id="agent-token" label="Agent token" text={issued.token} />
    </div>
    <div class="card">
      <h2>Start the agent</h2>
      <Copyable id="line-linux" label="Linux (systemd)" text={lines.linux} hint="Needs Node 20 or later, Docker, and sudo. Installs the agent, writes /etc/gridx/agent.env (0600) and the gridx-agent unit, and starts it." />
      <Copyable id="line-docker" label="Docker (the agent image)" text={lines.docker} hint="The agent drives the host's engine through the mounted socket, which is root on the host; jobs run as sibling containers." />
      <Copyable id="line-wsl" label="Windows, WSL2 with systemd" text={lines.wsl} hint="Run in cmd or PowerShell; needs systemd enabled in the distro (/etc/wsl.conf [boot] systemd=true), Node and Docker inside WSL." />
      <Copyable
        id="line-wsl-task"
        label="Windows, WSL2 without systemd (scheduled task; untested)"
        text={lines.wslTask}
        hint="Run in cmd. Writes the settings inside WSL, then a task started at your logon runs the agent in WSL. Not covered by the test suite."
      />
    </div>
    <div class="card">
      <h2>Waiting for the worker</h2>
      <OnboardingWatch issued={issued} workers={[]} />
    </div>
    <script src="/ui/assets/copy.js" defer></script>
  </Layout>
);

const Caps: FC<{ w: Worker }> = ({ w }) => (
  <dl class="facts">
    <dt>Status</dt>
    <dd>{w.status}</dd>
    <dt>Agent</dt>
    <dd>{w.agent_version}</dd>
    <dt>Slots</dt>
    <dd>{w.slots}</dd>
    <dt>CPUs</dt>
    <dd>{w.caps.cpu_cores}</dd>
    <dt>Memory</dt>
    <dd>{formatMemoryMb(w.caps.memory_mb)}</dd>
    <dt>GPUs</dt>
    <dd>{w.caps.gpus}</dd>
    <dt>OS</dt>
    <dd>
      {w.caps.os} · {w.caps.arch}
      {w.caps.wsl ? " · WSL" : ""}
    </dd>
    <dt>Sandbox</dt>
    <dd>
      {w.caps.runtimes.join(", ")}
      {w.caps.egress ? " · egress" : ""}
      {w.caps.ports ? " · ports" : ""}
    </dd>
    <dt>Labels</dt>
    <dd>{Object.entries(w.caps.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "none"}</dd>
  </dl>
);

/**
 * The new token's workers, polled until the first one is online; then the region stops and
 * shows what it offers.
 */
export const OnboardingWatch: FC<{ issued: Pick<IssuedToken, "id" | "pool">; workers: Worker[] }> = ({ issued, workers }) => {
  const joined = workers.filter((w) => w.status !== "offline");
  return (
    <LiveRegion src={joined.length ? null : watchHref(issued)} every={ONBOARDING_REFRESH_MS} id="onboarding-watch">
      <div id="onboarding-status" aria-live="polite">
        {joined.length === 0 ? (
          <p class="muted">No agent has connected with this token yet. Run one of the commands above; this updates by itself.</p>
        ) : (
          joined.map((w) => (
            <div data-worker={w.name}>
              <p class="notice">
                Worker <strong>{w.name}</strong> is {w.status} in pool {w.pool}. <a href={`/ui/workers?pool=${encodeURIComponent(w.pool)}`}>See it among the workers</a>
              </p>
              <Caps w={w} />
            </div>
          ))
        )}
      </div>
    </LiveRegion>
  );
};
