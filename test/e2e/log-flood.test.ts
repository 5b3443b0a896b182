import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueAgentToken, startAgent, startControlPlane, writeSecretsFile, type AgentProcess, type ControlPlane } from "../../scripts/local-grid.ts";
import { capMarker } from "../../agent/src/runner/log-collector.ts";
import { cp } from "./helpers.ts";
import { E2E_VARS } from "./global-setup.ts";

const MIB = 1024 * 1024;
/** Small, so a job passes it in a moment. */
const LOG_MAX_BYTES = 2 * MIB;
const FLOOD_LINES = 200_000;
/** The flood's line `i`, as the job prints it: 100 characters. */
const floodLine = (i: number) => `${String(i).padStart(9, "0")} ${"x".repeat(90)}`;
const FLOOD_SCRIPT = `for i in range(${FLOOD_LINES}): print(f"{i:09d} " + "x" * 90)`;

let plane: ControlPlane;
let agent: AgentProcess;

async function call(path: string, init: RequestInit = {}) {
  const res = await fetch(plane.url + path, { ...init, headers: { authorization: `Bearer ${plane.adminToken}`, "content-type": "application/json" } });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as any;
}

const submit = async (script: string) => (await call("/v1/jobs", { method: "POST", body: JSON.stringify({ kind: "python", python: { script }, limits: { timeout_s: 120 } }) })).id as string;

async function finished(id: string) {
  for (;;) {
    const job = await call(`/v1/jobs/${id}`);
    if (["completed", "failed", "canceled"].includes(job.status)) return job;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every line of a job's log, page by page. */
async function allLines(id: string): Promise<{ stream: string; text: string }[]> {
  const lines: { stream: string; text: string }[] = [];
  let after: string | null = null;
  for (;;) {
    const page = await call(`/v1/jobs/${id}/logs${after ? `?after=${after}` : ""}`);
    for (const line of page.lines) lines.push(line);
    after = page.next_cursor;
    if (page.more === false || !after || page.lines.length === 0) return lines;
  }
}

/** How many of the flood's lines fit under the cap, and the marker the log ends with. */
function expectedFlood(n: number, cap: number) {
  const bytes = floodLine(0).length + 1;
  const kept = Math.min(n, Math.floor(cap / bytes));
  return { kept, marker: capMarker(n - kept, (n - kept) * bytes) };
}

beforeAll(async () => {
  const dir = mkdtempSync(join(cp().stateDir, "log-flood-"));
  const adminToken = "log-flood-admin";
  plane = await startControlPlane({ adminToken, secretsFile: writeSecretsFile(join(dir, "secrets.env"), adminToken), persistTo: join(dir, "state"), vars: { ...E2E_VARS, LOG_MAX_BYTES: String(LOG_MAX_BYTES) } });
  agent = startAgent({ url: plane.url, token: await issueAgentToken(plane, "flooded"), name: "flooded", stateDir: join(dir, "agent"), slots: 2 });
}, 120_000);

afterAll(async () => {
  await agent?.stop("SIGTERM");
  await plane?.stop();
});

describe("a job flooding its log", () => {
  it("ends with the count marker past LOG_MAX_BYTES, starves no job beside it, and leaves the agent running the next", async () => {
    const flood = await submit(FLOOD_SCRIPT);
    const beside = await submit("import time\nfor i in range(2000):\n    print(f'beside {i}', flush=i % 100 == 0)\n    if i % 100 == 0: time.sleep(0.01)");
    const [flooded, calm] = await Promise.all([finished(flood), finished(beside)]);
    expect([flooded.status, calm.status]).toEqual(["completed", "completed"]);
    expect(new Set([flooded.worker_id, calm.worker_id]).size).toBe(1);

    const { kept, marker } = expectedFlood(FLOOD_LINES, LOG_MAX_BYTES);
    const lines = await allLines(flood);
    const stdout = lines.filter((l) => l.stream === "stdout").map((l) => l.text);
    expect(stdout).toEqual(Array.from({ length: kept }, (_, i) => floodLine(i)));
    expect(lines.at(-1)).toMatchObject({ stream: "system", text: marker });
    expect(lines.filter((l) => l.text.includes("dropped: log cap LOG_MAX_BYTES"))).toHaveLength(1);

    // The archived log ends with the same marker.
    const res = await fetch(`${plane.url}/v1/jobs/${flood}/artifacts/.gridx/job.log`, { headers: { authorization: `Bearer ${plane.adminToken}` }, redirect: "manual" });
    expect(res.status).toBe(302);
    const archived = (await (await fetch(res.headers.get("location")!)).text()).split("\n");
    expect(archived.at(-2)).toBe(marker);
    expect(archived.slice(0, kept)).toEqual(stdout);

    const besideLines = (await allLines(beside)).filter((l) => l.stream === "stdout").map((l) => l.text);
    expect(besideLines).toEqual(Array.from({ length: 2000 }, (_, i) => `beside ${i}`));

    // Still connected: the next job runs on it.
    const next = await finished(await submit("print('after the flood')"));
    expect(next).toMatchObject({ status: "completed", stdout: "after the flood\n", worker_id: flooded.worker_id });
  }, 240_000);

  it("gives a 200 KiB line back as pieces of at most 64 KiB whose concatenation is the line", async () => {
    const script = "line = ''.join(chr(97 + i % 26) for i in range(200 * 1024))\nprint(line)";
    const id = await submit(script);
    expect((await finished(id)).status).toBe("completed");
    const pieces = (await allLines(id)).filter((l) => l.stream === "stdout").map((l) => l.text);
    const original = Array.from({ length: 200 * 1024 }, (_, i) => String.fromCharCode(97 + (i % 26))).join("");
    expect(pieces.length).toBe(4);
    expect(pieces.every((p) => p.length <= 64 * 1024)).toBe(true);
    expect(pieces.join("")).toBe(original);
  }, 120_000);
});
