import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { api, containersOf, cp, isDone, launchAgent, launchOnlineAgent, relaunchAgent, removeContainersOfAgent, submit, uniqueName, waitForJob } from "./helpers.ts";

const python = (script: string, extra: Record<string, unknown> = {}) => ({ kind: "python", python: { script }, ...extra });

describe("a local grid: wrangler dev + a real agent + Docker", () => {
  const pool = uniqueName("e2e");
  let agent: AgentProcess;

  beforeAll(async () => {
    const name = uniqueName("node");
    agent = await launchOnlineAgent({ pool, name, slots: 2 });
  });

  afterAll(async () => {
    await agent?.stop("SIGTERM");
  });

  it("runs a python job to completion with its stdout, stderr and args", async () => {
    const script = 'import sys\nprint("hello from", sys.argv[1:])\nprint("to stderr", file=sys.stderr)';
    const job = await submit({ kind: "python", pool, python: { script, args: ["a", "b"] } });
    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "completed", exit_code: 0, failure_reason: null, attempt: 1 });
    expect(done.stdout).toBe("hello from ['a', 'b']\n");
    expect(done.stderr).toBe("to stderr\n");
    expect(await containersOf(job.id)).toEqual([]);

    // The same lines through the SSE stream, which ends with the job's outcome.
    const res = await fetch(`${cp().url}/v1/jobs/${job.id}/logs?follow=1`, { headers: { authorization: `Bearer ${cp().adminToken}` } });
    const text = await res.text();
    expect(text).toContain('"text":"hello from [\'a\', \'b\']"');
    expect(text).toMatch(/event: end\ndata: \{"status":"completed","exit_code":0/);
  });

  it("delivers output at any rate whole and in order", async () => {
    const job = await submit(python("import sys\nfor i in range(100000):\n    sys.stdout.write('%d\\n' % i)", { pool }));
    const done = await waitForJob(job.id, isDone);
    expect(done.status).toBe("completed");
    const texts: string[] = [];
    let after = "";
    for (;;) {
      const page = (await api(`/v1/jobs/${job.id}/logs${after ? `?after=${after}` : ""}`)).json;
      texts.push(...page.lines.filter((l: any) => l.stream === "stdout").map((l: any) => l.text));
      if (!page.next_cursor || page.next_cursor === after) break;
      after = page.next_cursor;
    }
    expect(texts.length).toBe(100000);
    expect(texts.every((t, i) => t === String(i))).toBe(true);
  });

  it("ends a failing script failed/exit_code with its exit code", async () => {
    const job = await submit(python("import sys\nprint('about to fail')\nsys.exit(3)", { pool }));
    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "failed", failure_reason: "exit_code", exit_code: 3 });
    expect(done.stdout).toBe("about to fail\n");
  });

  it("runs a command job: argv in an allowed image, no shell", async () => {
    const job = await submit({ kind: "command", pool, command: { image: "gridx/python:latest", argv: ["python3", "-c", "import os; print(os.getcwd(), os.getuid())"] } });
    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "completed", stdout: "/work/output 1000\n" });
  });

  it("runs inside the sandbox: non-root, read-only root, no network, no capabilities, no Docker socket", async () => {
    const script = [
      "import json, os, socket",
      "r = {'uid': os.getuid()}",
      "try:\n    open('/etc/owned', 'w')\n    r['root_write'] = True\nexcept OSError:\n    r['root_write'] = False",
      "open('/work/output/ok.txt', 'w').write('x'); open('/tmp/ok', 'w').write('x')",
      "try:\n    open('/work/input/x', 'w')\n    r['input_write'] = True\nexcept OSError:\n    r['input_write'] = False",
      "try:\n    socket.create_connection(('127.0.0.1', 8787), timeout=2)\n    r['net'] = True\nexcept OSError:\n    r['net'] = False",
      "r['docker_sock'] = os.path.exists('/var/run/docker.sock')",
      "r['cap_eff'] = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0]",
      "r['ifaces'] = sorted(os.listdir('/sys/class/net'))",
      "print(json.dumps(r))",
    ].join("\n");
    const done = await waitForJob((await submit(python(script, { pool }))).id, isDone);
    expect(done.status).toBe("completed");
    expect(JSON.parse(done.stdout)).toEqual({ uid: 1000, root_write: false, input_write: false, net: false, docker_sock: false, cap_eff: "0000000000000000", ifaces: ["lo"] });
  });

  it("cancels a running job and its container is killed", async () => {
    const script = "import signal, sys, time\ndef bye(*_):\n    print('got SIGTERM', flush=True)\n    sys.exit(0)\nsignal.signal(signal.SIGTERM, bye)\nprint('started', flush=True)\ntime.sleep(120)";
    const job = await submit(python(script, { pool }));
    await waitForJob(job.id, (j) => j.status === "running" && j.stdout.includes("started"));
    expect((await containersOf(job.id)).length).toBe(1);
    const res = await api(`/v1/jobs/${job.id}/cancel`, { method: "POST" });
    expect(res.json.status).toBe("canceled");
    const deadline = Date.now() + 30_000;
    while ((await containersOf(job.id)).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await containersOf(job.id)).toEqual([]);
    expect((await api(`/v1/jobs/${job.id}`)).json.status).toBe("canceled");
    // The stop is graceful: SIGTERM reaches the script (through the container's init) before any SIGKILL.
    const lines = (await api(`/v1/jobs/${job.id}/logs`)).json.lines.map((l: any) => l.text);
    expect(lines).toContain("got SIGTERM");
  });

  it("ends a job that outlives timeout_s failed/timeout", async () => {
    const job = await submit(python("import time\ntime.sleep(60)", { pool, limits: { timeout_s: 2 } }));
    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "failed", failure_reason: "timeout" });
    const lines = (await api(`/v1/jobs/${job.id}/logs`)).json.lines.filter((l: any) => l.stream === "system").map((l: any) => l.text);
    expect(lines.join("\n")).toMatch(/stopping the job \(timeout\)/);
  });

  it("ends a job that overruns its memory failed/oom", async () => {
    const job = await submit(python("x = bytearray(400 * 1024 * 1024)\nprint(len(x))", { pool, limits: { memory_mb: 64 } }));
    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "failed", failure_reason: "oom" });
  });
});

describe("agents that die mid-job", () => {
  it("a restarted agent removes its leftover container and the job completes on attempt 2", async () => {
    const pool = uniqueName("crash");
    const name = uniqueName("crashy");
    const first = await launchOnlineAgent({ pool, name });
    const job = await submit(python("import time\nprint('working', flush=True)\ntime.sleep(4)\nprint('done')", { pool }));
    await waitForJob(job.id, (j) => j.status === "running" && j.stdout.includes("working"));
    await first.stop("SIGKILL");
    expect((await containersOf(job.id)).length).toBe(1);

    const second = await relaunchAgent(first, name);
    try {
      const done = await waitForJob(job.id, isDone);
      expect(done).toMatchObject({ status: "completed", attempt: 2, stdout: "working\ndone\n" });
      expect(await containersOf(job.id)).toEqual([]);
      const lines = (await api(`/v1/jobs/${job.id}/logs`)).json.lines.filter((l: any) => l.text === "done");
      expect(lines.map((l: any) => l.attempt)).toEqual([2]);
    } finally {
      await second.stop("SIGTERM");
    }
  });

  it("another agent picks up the job of one that vanished, once it is declared lost", async () => {
    const pool = uniqueName("lost");
    const goneName = uniqueName("gone");
    const gone = await launchAgent({ pool, name: goneName });
    const job = await submit(python("import time\nprint('working', flush=True)\ntime.sleep(3)\nprint('finished')", { pool }));
    await waitForJob(job.id, (j) => j.status === "running" && j.stdout.includes("working"));
    await gone.stop("SIGKILL");
    const other = await launchAgent({ pool, name: uniqueName("other") });
    try {
      const done = await waitForJob(job.id, isDone);
      expect(done).toMatchObject({ status: "completed", attempt: 2, stdout: "working\nfinished\n" });
      expect(done.worker_id).not.toBeNull();
    } finally {
      await other.stop("SIGTERM");
      await removeContainersOfAgent(goneName);
    }
  });
});
