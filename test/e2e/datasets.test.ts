import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, createReadStream, existsSync, openSync, truncateSync, writeSync, closeSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/local-grid.ts";
import { api, cp, isDone, launchOnlineAgent, runGridx, submit, uniqueName, waitForJob } from "./helpers.ts";

const MIB = 1024 * 1024;

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Runs the gridx CLI; `killWhen` SIGKILLs it once its stderr matches (an interrupted upload). */
const gridx = (args: string[], killWhen?: RegExp) =>
  runGridx(args, { started: (child, out) => child.stderr!.on("data", () => killWhen?.test(out().stderr) && child.kill("SIGKILL")) });

describe("large files through R2 presigned URLs", () => {
  const pool = uniqueName("data");
  let agent: AgentProcess;
  let dir: string;
  let file: string;
  let fileSha: string;
  let datasetId: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(cp().stateDir, "datasets-"));
    file = join(dir, "big.bin");
    const fd = openSync(file, "w");
    for (let i = 0; i < 300; i++) writeSync(fd, randomBytes(MIB));
    closeSync(fd);
    fileSha = await sha256Of(file);
    const name = uniqueName("data-node");
    agent = await launchOnlineAgent({ pool, name, slots: 1 });
  });

  afterAll(async () => {
    await agent?.stop("SIGTERM");
  });

  it("uploads 300 MiB multipart with the CLI, resuming an interrupted upload without re-sending finished parts", async () => {
    const first = await gridx(["datasets", "upload", file, "--name", "big.bin"], /part [3-9]\/19/);
    expect(first.code).not.toBe(0);
    expect(existsSync(`${file}.gridx-upload`)).toBe(true);

    const second = await gridx(["datasets", "upload", file, "--name", "big.bin", "--json"]);
    const resumed = /resuming dataset ds_\w+: (\d+) of 19 parts already uploaded/.exec(second.stderr);
    expect(Number(resumed?.[1])).toBeGreaterThanOrEqual(3);
    expect(Number(resumed?.[1])).toBeLessThan(19);
    // Only the missing parts went up the second time.
    expect(second.stderr.match(/part \d+\/19/g)?.length).toBe(19 - Number(resumed?.[1]));
    expect(second.code).toBe(0);
    const dataset = JSON.parse(second.stdout);
    expect(dataset).toMatchObject({ status: "ready", size: 300 * MIB, sha256: fileSha, multipart: true });
    expect(existsSync(`${file}.gridx-upload`)).toBe(false);
    datasetId = dataset.id;
  });

  it("mounts the dataset read-only into a job, which sees the same bytes; a second job reads it from the cache", async () => {
    const script = "import hashlib\nh = hashlib.sha256()\nwith open('/work/input/data/big.bin', 'rb') as f:\n    for b in iter(lambda: f.read(1 << 20), b''):\n        h.update(b)\nprint(h.hexdigest())\ntry:\n    open('/work/input/data/big.bin', 'ab')\nexcept OSError:\n    print('read-only')";
    const spec = { kind: "python", pool, python: { script }, inputs: [{ dataset: datasetId, path: "data/big.bin" }] };
    const first = await waitForJob((await submit(spec)).id, isDone, 120_000);
    expect(first).toMatchObject({ status: "completed", stdout: `${fileSha}\nread-only\n` });
    const system = async (id: string) => (await api(`/v1/jobs/${id}/logs`)).json.lines.filter((l: any) => l.stream === "system").map((l: any) => l.text).join("\n");
    expect(await system(first.id)).toMatch(/input data\/big\.bin .* downloaded/);

    const second = await waitForJob((await submit(spec)).id, isDone, 120_000);
    expect(second).toMatchObject({ status: "completed", stdout: `${fileSha}\nread-only\n` });
    expect(await system(second.id)).toMatch(/input data\/big\.bin .* from the local cache/);
  });

  it("keeps what a job writes as artifacts with their sha256, big ones multipart, plus the job log", async () => {
    const script = [
      "import hashlib, os",
      "os.makedirs('/work/output/sub', exist_ok=True)",
      "big = os.urandom(70 * 1024 * 1024)",
      "open('/work/output/sub/big.bin', 'wb').write(big)",
      "open('/work/output/small.txt', 'w').write('hello artifacts')",
      "print(hashlib.sha256(big).hexdigest())",
    ].join("\n");
    const done = await waitForJob((await submit({ kind: "python", pool, python: { script }, limits: { memory_mb: 512 } })).id, isDone, 120_000);
    expect(done.status).toBe("completed");
    const bigSha = done.stdout.trim();
    const names = done.artifacts.map((a: any) => a.name);
    expect(names).toEqual([".gridx/job.log", "small.txt", "sub/big.bin"]);
    expect(done.artifacts.find((a: any) => a.name === "sub/big.bin")).toMatchObject({ size: 70 * MIB, sha256: bigSha });

    const fetchArtifact = async (name: string) => {
      const res = await fetch(`${cp().url}/v1/jobs/${done.id}/artifacts/${name}`, { headers: { authorization: `Bearer ${cp().adminToken}` }, redirect: "manual" });
      expect(res.status).toBe(302);
      return fetch(res.headers.get("location")!);
    };
    const big = Buffer.from(await (await fetchArtifact("sub/big.bin")).arrayBuffer());
    expect(createHash("sha256").update(big).digest("hex")).toBe(bigSha);
    expect(await (await fetchArtifact("small.txt")).text()).toBe("hello artifacts");
    expect(await (await fetchArtifact(".gridx/job.log")).text()).toBe(`${bigSha}\n`);
  });

  it("judges a job's output file by file: a bad name is noted and skipped, 1,500 files keep the first 1,000 and the log, and fail output_too_large", async () => {
    const badName = {
      kind: "python",
      pool,
      python: { script: ["open('/work/output/good.txt', 'w').write('kept')", "open('/work/output/what?.txt', 'w').write('refused')", "print('done')"].join("\n") },
    };
    const noted = await waitForJob((await submit(badName)).id, isDone, 120_000);
    // The job's own outcome stands: it exited 0.
    expect(noted).toMatchObject({ status: "completed", exit_code: 0 });
    expect(noted.artifacts.map((a: any) => a.name)).toEqual([".gridx/job.log", "good.txt"]);
    const log = (await api(`/v1/jobs/${noted.id}/logs`)).json.lines.map((l: any) => l.text).join("\n");
    expect(log).toContain("what?.txt");

    const many = { kind: "python", pool, python: { script: "for i in range(1500):\n    open(f'/work/output/f{i:04d}.txt', 'w').write('x')\nprint('wrote 1500')" } };
    const capped = await waitForJob((await submit(many)).id, isDone, 180_000);
    expect(capped).toMatchObject({ status: "failed", failure_reason: "output_too_large", exit_code: 0 });
    expect(capped.failure_message).toMatch(/500/);
    const kept = capped.artifacts.map((a: any) => a.name);
    expect(kept).toHaveLength(1001);
    expect(kept).toContain(".gridx/job.log");
    expect(kept).toContain("f0999.txt");
    expect(kept).not.toContain("f1000.txt");
  });

  it("refuses an expired or tampered presigned URL", async () => {
    const res = await fetch(`${cp().url}/v1/datasets/${datasetId}/download?ttl_s=1`, { headers: { authorization: `Bearer ${cp().adminToken}` }, redirect: "manual" });
    const url = new URL(res.headers.get("location")!);
    const tampered = new URL(url);
    tampered.pathname = tampered.pathname.replace(datasetId, "ds_other");
    expect((await fetch(tampered)).status).toBe(403);
    const signature = new URL(url);
    signature.searchParams.set("X-Amz-Signature", "0".repeat(64));
    expect((await fetch(signature)).status).toBe(403);
    await new Promise((r) => setTimeout(r, 2500));
    const expired = await fetch(url);
    expect(expired.status).toBe(403);
    expect(await expired.text()).toMatch(/expired/i);
  });

  it("downloads a dataset with the CLI, resuming a partial file, and checks its sha256", async () => {
    const out = join(dir, "copy.bin");
    // What an interrupted run leaves: a prefix that ends mid-part.
    const prefix = 40 * MIB + 12345;
    copyFileSync(file, `${out}.part`);
    truncateSync(`${out}.part`, prefix);
    const res = await gridx(["datasets", "download", datasetId, "-o", out, "--json"]);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual({ path: out, sha256: fileSha });
    expect(await sha256Of(out)).toBe(fileSha);
  });

  it("refuses at submit a job naming a dataset its project does not have", async () => {
    const res = await api("/v1/jobs", { method: "POST", json: { kind: "python", pool, python: { script: "print(1)" }, inputs: [{ dataset: "ds_nothing", path: "x" }] } });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ field: "inputs.0.dataset", message: "inputs.0.dataset: project default has no dataset ds_nothing" });
  });
});
