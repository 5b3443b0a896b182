import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { api, containersOf, isDone, launchAgent, launchOnlineAgent, submit, uniqueName, waitForJob, waitForWorker } from "./helpers.ts";

const python = (script: string, extra: Record<string, unknown> = {}) => ({ kind: "python", python: { script }, ...extra });

describe("agent limits on a real engine", () => {
  const pool = uniqueName("limits");
  let agent: AgentProcess;

  beforeAll(async () => {
    const name = uniqueName("lim");
    agent = await launchOnlineAgent({ pool, name, slots: 2, extraArgs: ["--output-cap-mb", "5", "--allow-image", "gridx/python:latest"] });
  });
  afterAll(async () => {
    await agent?.stop("SIGTERM");
  });

  it("contains a fork bomb with the pids limit", async () => {
    const script = [
      "import os, sys, time",
      "n = 0",
      "try:",
      "    for _ in range(100000):",
      "        if os.fork() == 0:",
      "            time.sleep(60)",
      "            os._exit(0)",
      "        n += 1",
      "except OSError:",
      "    print('fork refused after', n, flush=True)",
      "    sys.exit(0)",
      "print('never refused', n)",
    ].join("\n");
    const done = await waitForJob((await submit(python(script, { pool, limits: { pids: 32 } }))).id, isDone);
    expect(done.status).toBe("completed");
    const forks = Number(/fork refused after (\d+)/.exec(done.stdout)?.[1]);
    expect(forks).toBeLessThan(32);
  });

  it("cannot see the host: only its own input and output under /work, no host mounts", async () => {
    const script = "import os\nprint(sorted(os.listdir('/work')))\nprint(any('docker.sock' in l or '/var/lib/gridx' in l for l in open('/proc/self/mountinfo')))";
    const done = await waitForJob((await submit(python(script, { pool }))).id, isDone);
    expect(done.stdout).toBe("['input', 'output']\nFalse\n");
  });

  // The log cap and its marker: log-flood.test.ts, on a grid whose LOG_MAX_BYTES is small.
  it("splits an over-long line into pieces, and keeps every line after it whole and in order", async () => {
    const script = "print('x' * 100000)\nfor i in range(40000):\n    print('line %06d ' % i + 'y' * 40)";
    const done = await waitForJob((await submit(python(script, { pool }))).id, isDone);
    expect(done.status).toBe("completed");
    const lines: { stream: string; text: string }[] = [];
    for (let after: string | null = null, pages = 0; pages < 50; pages++) {
      const page: { lines: { stream: string; text: string }[]; more: boolean; next_cursor: string } = (await api(`/v1/jobs/${done.id}/logs${after ? `?after=${after}` : ""}`)).json;
      lines.push(...page.lines);
      if (!page.more) break;
      after = page.next_cursor;
    }
    expect(lines.slice(0, 2).map((l) => l.text.length)).toEqual([65536, 100000 - 65536]);
    expect(lines[0]!.text + lines[1]!.text).toBe("x".repeat(100000));
    const kept = lines.filter((l) => l.text.startsWith("line "));
    expect(kept.length).toBe(40000);
    expect(kept.every((l, i) => l.text === `line ${String(i).padStart(6, "0")} ${"y".repeat(40)}`)).toBe(true);
  });

  it("fails a job that writes past the output cap output_too_large", async () => {
    const script = "import time\nwith open('/work/output/big', 'wb') as f:\n    for _ in range(20):\n        f.write(b'0' * 1024 * 1024)\n        f.flush()\n        time.sleep(0.1)\ntime.sleep(30)";
    const done = await waitForJob((await submit(python(script, { pool }))).id, isDone);
    expect(done).toMatchObject({ status: "failed", failure_reason: "output_too_large" });
  });

  it("refuses a command image the control plane allows but this machine does not", async () => {
    const job = await submit({ kind: "command", pool, command: { image: "python:3.11-slim-bookworm", argv: ["python3", "-c", "print(1)"] } });
    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "failed", failure_reason: "input_error" });
    expect(done.failure_message).toMatch(/not allowed on this worker/);
  });

  it("runs two jobs at once on a 2-slot agent while the third waits", async () => {
    // Times from inside the containers: the third may be assigned and prepared early (prefetch),
    // but its process starts only once one of the first two has exited.
    const script = "import time\nprint('start', time.time(), flush=True)\ntime.sleep(3)\nprint('end', time.time(), flush=True)";
    const jobs = [await submit(python(script, { pool })), await submit(python(script, { pool })), await submit(python(script, { pool }))];
    const done = await Promise.all(jobs.map((j) => waitForJob(j.id, isDone)));
    expect(done.every((j) => j.status === "completed")).toBe(true);
    const at = (stdout: string, what: string) => Number(new RegExp(`^${what} ([0-9.]+)$`, "m").exec(stdout)![1]) * 1000;
    const [a, b, c] = done.map((j) => ({ start: at(j.stdout, "start"), end: at(j.stdout, "end") }));
    // The first two overlap; the third starts only after one of them ended.
    expect(a!.start).toBeLessThan(b!.end);
    expect(b!.start).toBeLessThan(a!.end);
    expect(c!.start).toBeGreaterThanOrEqual(Math.min(a!.end, b!.end));
  });
});

describe("agent lifecycle", () => {
  it("SIGTERM drains: the worker shows draining, its job finishes, then the agent exits", async () => {
    const pool = uniqueName("drain");
    const name = uniqueName("drainer");
    const agent = await launchOnlineAgent({ pool, name });
    const job = await submit(python("import time\nprint('working', flush=True)\ntime.sleep(3)\nprint('finished')", { pool }));
    await waitForJob(job.id, (j) => j.status === "running" && j.stdout.includes("working"));
    const exited = once(agent.process, "exit");
    agent.process.kill("SIGTERM");
    await waitForWorker(pool, name, "draining");
    const queuedMeanwhile = await submit(python("print('not here')", { pool }));
    const [code] = await exited;
    expect(code).toBe(0);
    expect((await api(`/v1/jobs/${job.id}`)).json).toMatchObject({ status: "completed", stdout: "working\nfinished\n" });
    expect((await api(`/v1/jobs/${queuedMeanwhile.id}`)).json.status).toBe("queued");
    await waitForWorker(pool, name, "offline");
    await api(`/v1/jobs/${queuedMeanwhile.id}/cancel`, { method: "POST" });
  });

  it("--once takes one job, runs it and exits", async () => {
    const pool = uniqueName("once");
    const first = await submit(python("print('only me')", { pool }));
    const second = await submit(python("print('not me')", { pool }));
    const agent = await launchAgent({ pool, name: uniqueName("ephemeral"), slots: 4, extraArgs: ["--once"] });
    const [code] = await once(agent.process, "exit");
    expect(code).toBe(0);
    expect((await api(`/v1/jobs/${first.id}`)).json).toMatchObject({ status: "completed", stdout: "only me\n" });
    expect((await api(`/v1/jobs/${second.id}`)).json.status).toBe("queued");
    expect(await containersOf(first.id)).toEqual([]);
    await api(`/v1/jobs/${second.id}/cancel`, { method: "POST" });
  });
});
