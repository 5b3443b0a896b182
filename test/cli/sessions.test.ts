import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ApiClient } from "../../cli/src/api.ts";
import { CliError } from "../../cli/src/errors.ts";
import { waitForPort } from "../../cli/src/ports.ts";
import { runCli } from "./fake-io.ts";

/*
 * jupyter and open against a fake control plane over real HTTP: what they send, and how they
 * wait for the job and its server. (exec's socket: exec.test.ts.)
 */
interface Seen {
  method: string;
  path: string;
  auth: string | undefined;
  body: unknown;
}
type Reply = { status: number; body?: unknown; stream?: boolean };
let server: Server;
let url: string;
let seen: Seen[] = [];
/** Answers by `METHOD path`; a list is answered in turn, its last one from then on. */
let routes: Record<string, Reply | Reply[]> = {};

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = "";
    req.on("data", (c: Buffer) => (text += c.toString()));
    req.on("end", () => {
      const path = new URL(req.url!, "http://x").pathname;
      seen.push({ method: req.method!, path, auth: req.headers.authorization, body: text ? JSON.parse(text) : undefined });
      const route = routes[`${req.method} ${path}`];
      const reply = (Array.isArray(route) ? (route.length > 1 ? route.shift() : route[0]) : route) ?? { status: 404, body: { error: { code: "not_found", message: `no route ${req.method} ${path}` } } };
      // An event stream stays open: the job's status is read when it opens.
      if (reply.stream) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(": open\n\n");
        return;
      }
      res.writeHead(reply.status, { "content-type": "application/json" });
      res.end(reply.body === undefined ? "" : JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  seen = [];
  routes = {};
});

const gridx = (argv: string[]) => runCli(argv, { GRIDX_URL: url, GRIDX_TOKEN: "gxu_test", XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "gridx-cli-sessions-")) });

const job = (status: string) => ({ id: "j_1", status, kind: "jupyter", project: "lab", pool: "gpu" });
const link = { url: "/v1/jobs/j_1/ports/8888/?gridx_link=once", expires_at: "2026-01-01T00:01:00.000Z" };

describe("gridx jupyter", () => {
  it("submits a jupyter job from its flags, waits for it to run and Jupyter to answer, then prints a one-time link", async () => {
    routes["POST /v1/jobs"] = { status: 201, body: job("queued") };
    routes["GET /v1/events"] = { status: 200, stream: true };
    routes["GET /v1/jobs/j_1"] = { status: 200, body: job("running") };
    routes["GET /v1/jobs/j_1/ports/8888/api"] = { status: 200, body: { version: "6.4.12" } };
    routes["POST /v1/jobs/j_1/ports/8888/links"] = { status: 201, body: link };
    const res = await gridx(["jupyter", "--gpus", "1", "--input", "ds_1:data", "--pool", "gpu", "--project", "lab", "--timeout", "8h", "--lab", "--image", "lab:1", "--no-open"]);
    expect(res.code).toBe(0);
    expect(seen[0]!.body).toEqual({
      kind: "jupyter",
      jupyter: { image: "lab:1", lab: true },
      project: "lab",
      pool: "gpu",
      requirements: { gpus: 1 },
      limits: { timeout_s: 8 * 3600 },
      inputs: [{ dataset: "ds_1", path: "data" }],
    });
    expect(seen.filter((s) => s.path.includes("/ports/")).map((s) => [s.method, s.path, s.auth])).toEqual([
      ["GET", "/v1/jobs/j_1/ports/8888/api", "Bearer gxu_test"],
      ["POST", "/v1/jobs/j_1/ports/8888/links", "Bearer gxu_test"],
    ]);
    expect(res.stdout).toBe(`${url}/v1/jobs/j_1/ports/8888/?gridx_link=once\n`);
    expect(res.stderr).toContain("job j_1 queued in pool gpu (project lab); waiting for Jupyter to start");
  });

  it("stops when the job ends before it runs, and says where to look", async () => {
    routes["POST /v1/jobs"] = { status: 201, body: job("queued") };
    routes["GET /v1/events"] = { status: 200, stream: true };
    routes["GET /v1/jobs/j_1"] = { status: 200, body: job("failed") };
    await expect(gridx(["jupyter"])).rejects.toThrow("job j_1 failed before its session started: see gridx status j_1 and gridx logs j_1");
    expect(seen[0]!.body).toEqual({ kind: "jupyter", jupyter: {} });
  });

  it("takes no arguments, and checks its flags before submitting", async () => {
    await expect(gridx(["jupyter", "notebook.ipynb"])).rejects.toThrow(/takes no arguments/);
    await expect(gridx(["jupyter", "--gpus", "one"])).rejects.toThrow(/--gpus takes a whole number/);
    await expect(gridx(["jupyter", "--input", "nopath"])).rejects.toThrow(/--input takes DATASET:PATH/);
    expect(seen).toEqual([]);
  });
});

describe("waitForPort", () => {
  const api = () => new ApiClient(url, "gxu_test");

  it("asks again while the port answers 502 or 504, and gives up past its bound with what to do", async () => {
    routes["GET /v1/jobs/j_1/ports/8888/api"] = [{ status: 504 }, { status: 502 }, { status: 200, body: {} }];
    await waitForPort(api(), "j_1", 8888, "api", { timeoutS: 60, intervalMs: 1 });
    expect(seen).toHaveLength(3);
    routes["GET /v1/jobs/j_1/ports/8888/api"] = { status: 502 };
    await expect(waitForPort(api(), "j_1", 8888, "api", { timeoutS: 0, intervalMs: 1 })).rejects.toThrow(
      "nothing answered on port 8888 of job j_1 within 0 s; the job goes on: see gridx logs j_1, or gridx cancel j_1",
    );
  });

  it("stops at any other answer with the server's message (the job ended: 409)", async () => {
    routes["GET /v1/jobs/j_1/ports/8888/api"] = { status: 409, body: { error: { code: "conflict", message: "job j_1 is not running" } } };
    const err = await waitForPort(api(), "j_1", 8888, "api", { timeoutS: 60, intervalMs: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).message).toBe("job j_1 is not running");
    expect(seen).toHaveLength(1);
  });
});

describe("gridx open, exec and shell", () => {
  it("open prints a fresh link to a declared port", async () => {
    routes["POST /v1/jobs/j_1/ports/6006/links"] = { status: 201, body: { url: "https://cp.example.com/v1/jobs/j_1/ports/6006/?gridx_link=x", expires_at: link.expires_at } };
    const res = await gridx(["open", "j_1", "6006"]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe("https://cp.example.com/v1/jobs/j_1/ports/6006/?gridx_link=x\n");
    expect(seen[0]).toMatchObject({ method: "POST", auth: "Bearer gxu_test" });
  });

  it("open says why a port cannot be opened", async () => {
    routes["POST /v1/jobs/j_1/ports/9999/links"] = { status: 404, body: { error: { code: "not_found", message: "job j_1 has no port 9999" } } };
    await expect(gridx(["open", "j_1", "9999"])).rejects.toThrow("job j_1 has no port 9999: list jobs with `gridx list`; a port must be in the job's spec.ports");
  });

  it.each([
    [["open", "j_1"], /give the job id and the port/],
    [["open", "j_1", "http"], /PORT takes a whole number from 1 to 65535/],
    [["open", "j_1", "70000"], /PORT takes a whole number from 1 to 65535/],
    [["exec", "j_1"], /give the job id and the command: gridx exec ID -- COMMAND/],
    [["exec", "j_1", "ls", "-l"], /Unknown option '-l'/],
    [["shell"], /give one job id: gridx shell ID/],
    [["shell", "j_1", "j_2"], /give one job id/],
  ])("%j is a usage error", async (argv, message) => {
    const err = await gridx(argv).catch((e: unknown) => e);
    expect((err as CliError).exitCode).toBe(2);
    expect((err as CliError).message).toMatch(message);
  });
});
