import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AttemptSandbox, JobRequest, type RepoCredentials } from "../../protocol/index.ts";
import { loadConfig } from "../../agent/src/config.ts";
import { DockerEngine, registryAuthHeader } from "../../agent/src/docker/engine.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { familiarName, LoginPulls, loginSecrets, namesImage, notARepository, parseImage, parseLogin, pinnedReference, pullDecision, PullProgress } from "../../agent/src/runner/command-image.ts";
import { DockerRunner } from "../../agent/src/runner/docker-runner.ts";
import { recorder } from "../support/run-hooks.ts";
import { buildCatImage, removeImages, startRegistry, type LocalRegistry } from "../support/registry.ts";

describe("image references, logins and pull decisions", () => {
  it("takes a reference apart as Docker does", () => {
    expect(parseImage("127.0.0.1:5000/acme/tool:1")).toEqual({ repository: "127.0.0.1:5000/acme/tool", tag: "1", digest: false, registry: "127.0.0.1:5000" });
    expect(parseImage("127.0.0.1:5000/acme/tool")).toMatchObject({ repository: "127.0.0.1:5000/acme/tool", tag: "latest" });
    expect(parseImage("ghcr.io/acme/x@sha256:" + "a".repeat(64))).toEqual({ repository: "ghcr.io/acme/x", tag: "sha256:" + "a".repeat(64), digest: true, registry: "ghcr.io" });
    expect(parseImage("python:3.11")).toEqual({ repository: "python", tag: "3.11", digest: false, registry: "docker.io" });
    expect(parseImage("acme/tool")).toMatchObject({ registry: "docker.io", tag: "latest" });
    expect(parseImage("localhost/acme/tool:2")).toMatchObject({ registry: "localhost", tag: "2" });
    // Docker ignores a tag beside a digest: the repository is the name alone, so the login record matches it.
    expect(parseImage("ghcr.io/acme/x:1@sha256:" + "a".repeat(64))).toEqual({ repository: "ghcr.io/acme/x", tag: "sha256:" + "a".repeat(64), digest: true, registry: "ghcr.io" });
  });

  it("refuses names that are no repository: image ids, bare hex Docker takes as an id prefix, and the agent's own environment images", () => {
    expect(notARepository("3f1a2b3c4d5e")).toMatch(/^names an image by its id/);
    expect(notARepository("sha256:" + "a".repeat(64))).toMatch(/^names an image by its id/);
    expect(notARepository("gridx-env:0123")).toMatch(/this agent's environment images/);
    expect(notARepository("docker.io/library/gridx-env:0123")).toMatch(/this agent's environment images/);
    expect([notARepository("python:3.11"), notARepository("acme/3f1a2b"), notARepository("ghcr.io/acme/gridx-env:1")]).toEqual([null, null, null]);
  });

  it("takes an inspected image as the one named only when that tag or digest is among its names", () => {
    const inspect = { RepoTags: ["python:3.11", "127.0.0.1:5000/acme/tool:1"], RepoDigests: ["python@sha256:2"] };
    expect(namesImage(parseImage("docker.io/library/python:3.11"), inspect)).toBe(true);
    expect(namesImage(parseImage("127.0.0.1:5000/acme/tool:1"), inspect)).toBe(true);
    expect(namesImage(parseImage("python@sha256:2"), inspect)).toBe(true);
    expect(namesImage(parseImage("python:3.12"), inspect)).toBe(false);
    expect(namesImage(parseImage("python@sha256:3"), inspect)).toBe(false);
    expect(namesImage(parseImage("acme/tool:1"), inspect)).toBe(false);
    expect(namesImage(parseImage("python"), { RepoTags: [], RepoDigests: [] })).toBe(false);
  });

  it("finds the digest that pins the named repository, Docker Hub's short names included", () => {
    expect(familiarName("docker.io/library/python")).toBe("python");
    expect(familiarName("docker.io/acme/x")).toBe("acme/x");
    const inspect = { RepoDigests: ["other/x@sha256:1", "python@sha256:2"] };
    expect(pinnedReference(parseImage("docker.io/library/python:3"), inspect)).toBe("python@sha256:2");
    expect(pinnedReference(parseImage("acme/x:1"), inspect)).toBeNull();
    expect(pinnedReference(parseImage("gridx/python:latest"), { RepoDigests: [] })).toBeNull();
  });

  it("reads a login as username:password, a password with colons kept whole, and never shows it when it is not one", () => {
    expect(parseLogin("acme:pa:ss", "ghcr.io")).toEqual({ username: "acme", password: "pa:ss", serveraddress: "ghcr.io" });
    for (const bad of ["nocolon-secret", ":only-password", "user:"]) {
      expect(() => parseLogin(bad, "ghcr.io")).toThrow(expect.objectContaining({ reason: "input_error", message: expect.not.stringContaining(bad) }));
    }
    expect(loginSecrets("acme:pa:ss")).toEqual(["acme:pa:ss", "pa:ss"]);
    expect(loginSecrets(undefined)).toEqual([]);
  });

  it("sends the login padded, in URL-safe base64, as Docker 20.10 reads it", () => {
    const header = registryAuthHeader({ username: "u", password: "p?>", serveraddress: "r" });
    expect(header).toMatch(/^[A-Za-z0-9_-]+=*$/);
    expect(header.length % 4).toBe(0);
    expect(JSON.parse(Buffer.from(header, "base64url").toString())).toEqual({ username: "u", password: "p?>", serveraddress: "r" });
  });

  it("pulls with a login always, a missing image always, an image pulled here with a login again without one, and else uses what is here", () => {
    expect(pullDecision({ local: true, login: true, pulledWithLogin: false })).toBe("pull");
    expect(pullDecision({ local: false, login: false, pulledWithLogin: false })).toBe("pull");
    expect(pullDecision({ local: true, login: false, pulledWithLogin: true })).toBe("pull");
    expect(pullDecision({ local: true, login: false, pulledWithLogin: false })).toBe("use");
  });

  it("remembers the repositories pulled with a login across restarts, and fails rather than forget when its record is unreadable", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gridx-login-pulls-"));
    try {
      const file = join(dir, "images", "pulled-with-login.json");
      await new LoginPulls(file).add("docker.io/library/private");
      await new LoginPulls(file).add("ghcr.io/acme/x");
      const restarted = new LoginPulls(file);
      expect(await restarted.has("private")).toBe(true);
      expect(await restarted.has("ghcr.io/acme/x")).toBe(true);
      expect(await restarted.has("ghcr.io/acme/y")).toBe(false);
      writeFileSync(file, "{not json");
      await expect(new LoginPulls(file).has("ghcr.io/acme/y")).rejects.toMatchObject({ reason: "image_error", message: expect.stringMatching(/^this worker's record of images pulled with a registry login cannot be read/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("logs a layer's state changes and each quarter of its download, not every progress event", () => {
    const progress = new PullProgress(25);
    const layer = "36b2e2767144";
    const lines = [
      { status: "Pulling from acme/tool", id: "1" },
      { status: "Pulling fs layer", id: layer, progressDetail: {} },
      ...Array.from({ length: 101 }, (_, i) => ({ status: "Downloading", id: layer, progressDetail: { current: i * 20_000, total: 2_000_000 } })),
      { status: "Download complete", id: layer, progressDetail: {} },
      { status: "Download complete", id: layer, progressDetail: {} },
      { status: "Digest: sha256:abc" },
    ]
      .map((e) => progress.line(e))
      .filter((l) => l !== null);
    expect(lines).toEqual([
      "Pulling from acme/tool",
      `layer ${layer}: Pulling fs layer`,
      `layer ${layer}: Downloading 0% of 2.0 MB`,
      `layer ${layer}: Downloading 25% of 2.0 MB`,
      `layer ${layer}: Downloading 50% of 2.0 MB`,
      `layer ${layer}: Downloading 75% of 2.0 MB`,
      `layer ${layer}: Downloading 100% of 2.0 MB`,
      `layer ${layer}: Download complete`,
      "Digest: sha256:abc",
    ]);
  });

  it("takes image patterns for --allow-image and a --pull-timeout, refusing what is neither", () => {
    const env = { GRIDX_URL: "https://gridx.example.com", GRIDX_AGENT_TOKEN: "gxa_0123456789" };
    expect(loadConfig(["--allow-image", "ghcr.io/acme/*"], env)).toMatchObject({ ok: true, config: { allowImages: ["ghcr.io/acme/*"], pullTimeoutS: 900 } });
    expect(loadConfig(["--pull-timeout", "60"], env)).toMatchObject({ ok: true, config: { pullTimeoutS: 60 } });
    expect(loadConfig(["--allow-image", "Not An Image"], env)).toMatchObject({ ok: false, error: expect.stringMatching(/^allowImages\.0: an image reference/) });
    expect(loadConfig(["--pull-timeout", "0"], env)).toMatchObject({ ok: false, error: expect.stringMatching(/^pullTimeoutS:/) });
  });
});

const docker = new DockerEngine();
const login = { username: "acme", password: `pw-${randomBytes(8).toString("hex")}` };
let registry: LocalRegistry;
let image: string;
let pushedDigest: string;
const stateDirs: string[] = [];
/** A layer of its own, so a pull really downloads something and the test can remove it after. */
const built = `gridx-test/pull-source:${randomBytes(4).toString("hex")}`;

function runner(opts: { allowedImages?: string[]; pullTimeoutS?: number; stateDir?: string } = {}) {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), "gridx-pull-"));
  stateDirs.push(stateDir);
  const instance = randomBytes(16).toString("hex");
  return new DockerRunner(docker, { stateDir, agentName: "pull", instance, images: { python: "gridx/python:latest" }, stopGraceS: 1, tmpfsMb: 16, outputCapBytes: 1 << 20, allowedImages: opts.allowedImages ?? [], pullTimeoutS: opts.pullTimeoutS }, silentLogger);
}

/** A command job naming `imageName`, with the login `registry` (if any) under secret `reg`. */
function commandJob(imageName: string, argv: string[], registryLogin?: string) {
  const credentials: RepoCredentials | undefined = registryLogin === undefined ? undefined : { registry: registryLogin };
  const spec = JobRequest.parse({ kind: "command", command: { image: imageName, argv, ...(registryLogin !== undefined && { registry_credentials: "reg" }) } });
  return { jobId: `j_pull${randomBytes(3).toString("hex")}`, attempt: 1, spec, gpuIndices: [], inputs: [], credentials, sandbox: AttemptSandbox.parse({}) };
}

const loginText = `${login.username}:${login.password}`;
const everyText = (out: object, seen: ReturnType<typeof recorder>["seen"]) => JSON.stringify([out, seen]);

describe("command jobs pull their images from a registry", () => {
  beforeAll(async () => {
    registry = await startRegistry(login);
    image = `${registry.host}/acme/tool:1`;
    await buildCatImage(built, { blob: randomBytes(16 << 20), marker: "tool v1\n" });
    pushedDigest = await registry.push(built, image, login);
    // Only in the registry from here on: the first job has to pull it.
    await removeImages(image, built);
  }, 120_000);

  afterAll(async () => {
    for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });
    await removeImages(built);
    if (!registry) return;
    await removeImages(`${registry.host}/acme/tool@${pushedDigest}`, image);
    await registry.close();
  });

  it("pulls with the job's login, shows the pull in the log, runs the image pinned by digest and reports that digest", async () => {
    const { seen, hooks } = recorder();
    const out = await runner().run(commandJob(image, ["/bin/cat", "/marker"], loginText), hooks, new AbortController().signal);
    const pinned = `${registry.host}/acme/tool@${pushedDigest}`;
    expect(out).toEqual({ exit_code: 0, failure_reason: null, message: null, resolved: { image: pinned } });
    expect(seen.started).toEqual([{ image: pinned }]);
    expect(seen.stdout).toBe("tool v1\n");
    expect(seen.system).toContain(`[gridx: pulling image ${image} with the registry login in secret reg]`);
    expect(seen.system).toContain(`[gridx: image ${image} is ${pinned}]`);
    expect(seen.build).toContainEqual(expect.stringMatching(new RegExp(`^${image}: layer [0-9a-f]{12}: Downloading \\d+% of 16\\.8 MB$`)));
    expect(seen.build).toContainEqual(expect.stringMatching(/: layer [0-9a-f]{12}: Pull complete$/));
    expect(seen.build).toContain(`${image}: Digest: ${pushedDigest}`);
    // Throttled: a 16 MB layer sends Docker's progress hundreds of times.
    expect(seen.build.length).toBeLessThan(40);
    expect(everyText(out, seen)).not.toContain(login.password);
  });

  it("pulls again for the next job with a login, so the registry decides, fetching no layer it has", async () => {
    const { seen, hooks } = recorder();
    const out = await runner().run(commandJob(image, ["/bin/cat", "/marker"], loginText), hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: 0, failure_reason: null, resolved: { image: `${registry.host}/acme/tool@${pushedDigest}` } });
    expect(seen.build.filter((l) => l.includes("Downloading"))).toEqual([]);
    expect(seen.build).toContain(`${image}: Status: Image is up to date for ${image}`);
  });

  it("does not hand an image pulled with a login to a job that gives none, after a restart too: the registry refuses it the anonymous pull", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "gridx-pull-"));
    expect(await runner({ stateDir }).run(commandJob(image, ["/bin/cat", "/marker"], loginText), recorder().hooks, new AbortController().signal)).toMatchObject({ failure_reason: null });
    await expect(docker.inspectImage(image)).resolves.toMatchObject({ Id: expect.any(String) });
    const { seen, hooks } = recorder();
    // A new runner on the same state folder: the agent restarted meanwhile.
    const out = await runner({ stateDir }).run(commandJob(image, ["/bin/cat", "/marker"]), hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: null, failure_reason: "image_error", message: expect.stringMatching(/^could not pull image .* \(this job gives no registry login, and the image was pulled here with one\): .*(unauthorized|no basic auth)/) });
    expect(seen.stdout).toBe("");
  });

  it.each([
    ["a wrong password", () => image, () => `${login.username}:not-the-password`, /unauthorized/],
    ["no login", () => image, () => undefined, /no basic auth credentials|unauthorized/],
    ["a tag the registry does not have", () => `${registry.host}/acme/tool:missing`, () => loginText, /manifest unknown|not found/],
    ["a registry that is not there", () => "127.0.0.1:9/acme/tool:1", () => loginText, /connection refused/],
  ])("fails image_error with %s, saying why and never showing the password", async (_what, name, given, why) => {
    await removeImages(image);
    const { seen, hooks } = recorder();
    const out = await runner().run(commandJob(name(), ["true"], given()), hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: null, failure_reason: "image_error", message: expect.stringMatching(why) });
    expect(out.message).toContain(`could not pull image ${name()}`);
    expect(seen.started).toEqual([]);
    expect(everyText(out, seen)).not.toContain(login.password);
  });

  it("refuses input_error, before any pull, an image no pattern of the agent's --allow-image matches", async () => {
    await removeImages(image);
    const { seen, hooks } = recorder();
    const out = await runner({ allowedImages: [`${registry.host}/other/*`, "gridx/*"] }).run(commandJob(image, ["/bin/cat", "/marker"], loginText), hooks, new AbortController().signal);
    expect(out).toMatchObject({ failure_reason: "input_error", message: `image ${image} is not allowed on this worker (allowed: ${registry.host}/other/*, gridx/*)` });
    expect(seen.system.filter((l) => l.includes("pulling"))).toEqual([]);
    await expect(docker.inspectImage(image)).rejects.toMatchObject({ status: 404 });
  });

  it("runs an image matching one of the agent's patterns", async () => {
    const out = await runner({ allowedImages: [`${registry.host}/acme/*`] }).run(commandJob(image, ["/bin/cat", "/marker"], loginText), recorder().hooks, new AbortController().signal);
    expect(out).toMatchObject({ exit_code: 0, failure_reason: null });
  });

  it("uses an image only built here as it is, :latest included, pinned by its id", async () => {
    const id = (await docker.inspectImage("gridx/python:latest")).Id;
    const { seen, hooks } = recorder();
    const out = await runner().run(commandJob("gridx/python:latest", ["true"]), hooks, new AbortController().signal);
    expect(out).toEqual({ exit_code: 0, failure_reason: null, message: null, resolved: { image: id } });
    expect(seen.system.filter((l) => l.includes("pulling"))).toEqual([]);
  });

  it("refuses input_error, with a pattern as broad as *, an image named by id or id prefix and an environment image built here", async () => {
    const id = (await docker.inspectImage("gridx/python:latest")).Id;
    const envImage = `gridx-env:test${randomBytes(4).toString("hex")}`;
    await promisify(execFile)("docker", ["tag", "gridx/python:latest", envImage]);
    try {
      for (const name of [id.slice("sha256:".length, "sha256:".length + 12), id, envImage]) {
        const { seen, hooks } = recorder();
        const out = await runner({ allowedImages: ["*"] }).run(commandJob(name, ["true"]), hooks, new AbortController().signal);
        expect(out).toMatchObject({ exit_code: null, failure_reason: "input_error", message: expect.stringMatching(new RegExp(`^command\\.image: ${name.replace(/[.:]/g, "\\$&")} (names an image by its id|is one of this agent's environment images)`)) });
        expect(seen.system.filter((l) => l.includes("pulling"))).toEqual([]);
      }
    } finally {
      await removeImages(envImage);
    }
  });

  it("gives up a pull the registry never answers after --pull-timeout, image_error", async () => {
    const held = new Set<Socket>();
    const silent = createServer((socket) => void held.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const started = Date.now();
      const out = await runner({ pullTimeoutS: 1 }).run(commandJob(`127.0.0.1:${port}/acme/tool:1`, ["true"]), recorder().hooks, new AbortController().signal);
      expect(out).toMatchObject({ failure_reason: "image_error", message: `pulling 127.0.0.1:${port}/acme/tool:1 took longer than 1s (the agent's --pull-timeout)` });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      for (const s of held) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
