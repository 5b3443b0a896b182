import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { ApiClient } from "../../cli/src/api.ts";
import { CliError, NetworkError } from "../../cli/src/errors.ts";
import { EXIT } from "../../cli/src/exit-codes.ts";

type Seen = { url: string; method: string; headers: Headers; body: string | null };

/** An ApiClient whose fetch answers with a canned response and records the request. */
function client(status: number, body: unknown, headers: Record<string, string> = {}) {
  const seen: Seen[] = [];
  const fake = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    seen.push({ url: req.url, method: req.method, headers: req.headers, body: req.body ? await req.text() : null });
    return new Response(typeof body === "string" ? body : JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
  }) as typeof fetch;
  return { api: new ApiClient("http://cp.test", "tok", fake), seen };
}

async function failure(promise: Promise<unknown>): Promise<CliError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof CliError) return err;
    throw err;
  }
  throw new Error("expected a CliError");
}

const error = (code: string, message: string, field?: string) => ({ error: { code, message, ...(field ? { field } : {}) } });

describe("ApiClient", () => {
  it("sends typed calls with the bearer token and returns the body", async () => {
    const { api, seen } = client(201, { id: "j_1", status: "queued" });
    const job = await api.json(api.rpc.v1.jobs.$post({ json: { kind: "python", python: { script: "print(1)" } }, header: { "Idempotency-Key": "k1" } }));
    expect(job).toMatchObject({ id: "j_1" });
    expect(seen[0]).toMatchObject({ url: "http://cp.test/v1/jobs", method: "POST" });
    expect(seen[0]!.headers.get("authorization")).toBe("Bearer tok");
    expect(seen[0]!.headers.get("idempotency-key")).toBe("k1");
    expect(JSON.parse(seen[0]!.body!)).toEqual({ kind: "python", python: { script: "print(1)" } });
  });

  it("puts path parameters and the query in the URL", async () => {
    const { api, seen } = client(200, { jobs: [], next_cursor: null });
    await api.json(api.rpc.v1.jobs.$get({ query: { status: "failed", limit: "5" } }));
    await api.json(api.rpc.v1.jobs[":id"].$get({ param: { id: "j_2" } }));
    expect(seen.map((s) => s.url)).toEqual(["http://cp.test/v1/jobs?status=failed&limit=5", "http://cp.test/v1/jobs/j_2"]);
  });

  it("returns where a redirect points", async () => {
    const { api } = client(302, "", { location: "http://r2.test/object?sig=1" });
    expect(await api.location(api.rpc.v1.datasets[":id"].download.$get({ param: { id: "ds_1" }, query: {} }, { init: { redirect: "manual" } }))).toBe("http://r2.test/object?sig=1");
  });

  it.each([
    [401, error("unauthorized", "the token is not valid or has been revoked"), EXIT.auth, /refused the token .* run `gridx login http:\/\/cp.test`/],
    [403, error("forbidden", "a user token cannot use this route"), EXIT.auth, /a user token cannot use this route: ask an admin/],
    [404, error("not_found", "no job j_9"), EXIT.error, /^no job j_9: list jobs with `gridx list`$/],
    [400, error("validation_failed", "limits.memory_mb: Too small", "limits.memory_mb"), EXIT.error, /refused the request: limits.memory_mb: Too small \(set by --memory\)/],
    [400, error("validation_failed", "python.script: the script is empty", "python.script"), EXIT.error, /\(set by the script file\)/],
    [409, error("conflict", "job j_1 already finished with status completed"), EXIT.error, /^job j_1 already finished with status completed$/],
    [413, error("payload_too_large", "the body is larger than 1048576 bytes"), EXIT.error, /^the body is larger than 1048576 bytes$/],
    [418, "teapot", EXIT.error, /^418: teapot$/],
    [500, error("internal", "internal error; it has been logged"), EXIT.error, /control plane failed \(500\).*try again/],
    [502, "<html>bad gateway</html>", EXIT.error, /control plane failed \(502\): <html>bad gateway/],
  ])("turns a %i into an error that says what to do", async (status, body, exitCode, message) => {
    const { api } = client(status, body);
    const err = await failure(api.json(api.rpc.v1.jobs[":id"].$get({ param: { id: "j_9" } }), { notFound: "list jobs with `gridx list`", forbidden: "ask an admin" }));
    expect(err.exitCode).toBe(exitCode);
    expect(err.message).toMatch(message);
  });

  it("shows a quota refusal's quota, its use and how to raise it, and when to retry a rate limit", async () => {
    const quota = { error: { code: "too_many_requests", message: "project: quota max_queued_jobs: 10 of 10 jobs are queued already", field: "project", quota: "max_queued_jobs", limit: 10, usage: 10 } };
    const refused = client(429, quota);
    const err = await failure(refused.api.json(refused.api.rpc.v1.jobs.$post({ json: { kind: "python", python: { script: "print(1)" } }, header: {} })));
    expect(err.exitCode).toBe(EXIT.error);
    expect(err.message).toBe(
      "project: quota max_queued_jobs: 10 of 10 jobs are queued already (quota max_queued_jobs: 10 of 10 in use; a project owner raises it with gridx projects set PROJECT --max-queued N)",
    );
    const limited = client(429, { error: { code: "too_many_requests", message: "too many requests for this token", limit: 20 } }, { "retry-after": "3" });
    expect((await failure(limited.api.json(limited.api.rpc.v1.me.$get()))).message).toBe("too many requests for this token (the limit is 20; retry after 3 s)");
    const full = client(413, { error: { code: "payload_too_large", message: "project: quota max_dataset_bytes: the project holds 90 of 100 bytes; this upload needs 20", quota: "max_dataset_bytes", limit: 100, usage: 90 } });
    expect((await failure(full.api.json(full.api.rpc.v1.me.$get()))).message).toMatch(/\(quota max_dataset_bytes: 90 of 100 in use; a project owner raises it with gridx projects set PROJECT --max-dataset-bytes N\)$/);
  });

  it("names the flag of a refused field, the call's own before the job flags", async () => {
    const bad = (field: string) => client(400, error("validation_failed", `${field}: bad`, field));
    const name = bad("name");
    expect((await failure(name.api.json(name.api.rpc.v1.users.$post({ json: { name: "-x" } }), { fields: [["name", "NAME"]] }))).message).toMatch(/\(set by NAME\)$/);
    const job = bad("tags.0");
    expect((await failure(job.api.json(job.api.rpc.v1.me.$get()))).message).toMatch(/\(set by --tag\)$/);
  });

  it("says what to check when the control plane cannot be reached", async () => {
    // A port that was free a moment ago: nothing listens there.
    const server = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const { port } = server.address() as { port: number };
    await new Promise((r) => server.close(r));
    const api = new ApiClient(`http://127.0.0.1:${port}`, "tok");
    const err = await failure(api.json(api.rpc.v1.workers.$get({ query: {} })));
    expect(err).toBeInstanceOf(NetworkError);
    expect(err.exitCode).toBe(EXIT.error);
    expect(err.message).toMatch(new RegExp(`cannot reach http://127.0.0.1:${port} \\(ECONNREFUSED\\): is the control plane running`));
  });
});
