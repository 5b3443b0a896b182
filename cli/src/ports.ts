import type { ApiClient } from "./api.ts";
import type { Io } from "./cli.ts";
import { CliError } from "./errors.ts";
import { followEvents, isTerminal } from "./events.ts";

const notFound = "list jobs with `gridx list`; a port must be in the job's spec.ports";

/** `/v1/jobs/:id/ports/:port/`, where the control plane serves a job's port (protocol/tunnel.ts's portPath, without loading zod). */
export const portPath = (job: string, port: number) => `/v1/jobs/${encodeURIComponent(job)}/ports/${port}/`;

/** Waits for a job to start running; a job that ends first is an error that says where to look. */
export async function waitForRunning(api: ApiClient, id: string): Promise<void> {
  const ended = await followEvents(
    api,
    { job: id },
    (e) => (e.job_id === id && (e.status === "running" || isTerminal(e.status)) ? e.status : undefined),
    {
      opened: async () => {
        const { status } = await api.json(api.rpc.v1.jobs[":id"].$get({ param: { id } }), { notFound });
        return status === "running" || isTerminal(status) ? status : undefined;
      },
    },
  );
  if (ended !== "running") throw new CliError(`job ${id} ${ended} before its session started: see gridx status ${id} and gridx logs ${id}`);
}

/** How long a server in a job has to answer, and how often it is asked. */
export interface ReadyOptions {
  timeoutS: number;
  intervalMs?: number;
}

/**
 * Asks `GET <portPath><path>` until it answers 2xx. A 502 or 504 (nothing listens on the port
 * yet, the agent's answer was late) is asked again after `intervalMs`; any other answer is
 * the error it names (the job ended: 409; no access: 401, 403, 404). Past `timeoutS`, an error
 * that says the job still runs.
 */
export async function waitForPort(api: ApiClient, id: string, port: number, path: string, opts: ReadyOptions): Promise<void> {
  const deadline = Date.now() + opts.timeoutS * 1000;
  for (;;) {
    const res = await api.raw(`${portPath(id, port)}${path}`);
    if (!res.ok && res.status !== 502 && res.status !== 504) throw await api.error(res, { notFound });
    await res.text();
    if (res.ok) return;
    if (Date.now() + (opts.intervalMs ?? 1000) > deadline) {
      throw new CliError(`nothing answered on port ${port} of job ${id} within ${opts.timeoutS} s; the job goes on: see gridx logs ${id}, or gridx cancel ${id}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
  }
}

/** A one-time link to a job's port (valid for a minute; opening it starts a browser session). */
export async function createLink(api: ApiClient, id: string, port: number): Promise<{ url: string; expires_at: string }> {
  const res = await api.raw(`${portPath(id, port)}links`, { method: "POST", body: "{}" });
  if (!res.ok) throw await api.error(res, { notFound, forbidden: "opening a port needs read access to the job's project" });
  const link = (await res.json()) as { url: string; expires_at: string };
  // The server may answer a path; the link is the control plane's either way.
  return { ...link, url: new URL(link.url, `${api.base.replace(/\/+$/, "")}/`).href };
}

/** Opens a URL in the user's browser when stdout is a terminal (a script gets only the printed URL). */
export async function openInBrowser(io: Io, url: string): Promise<void> {
  if (!io.stdout.isTTY) return;
  // Loaded only here: every other start of the CLI skips it.
  const { spawn } = await import("node:child_process");
  const opener = process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open";
  const child = spawn(opener, [url], { detached: true, stdio: "ignore" });
  child.on("error", () => io.stderr.write(`[gridx: could not run ${opener}; open the link yourself]\n`));
  child.unref();
}
