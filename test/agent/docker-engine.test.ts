import { execFile, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { DockerEngine, DockerError, DockerTimeoutError, engineAddress, negotiateApiVersion } from "../../agent/src/docker/engine.ts";
import { FrameDemuxer, type OutputStream } from "../../agent/src/docker/frames.ts";
import type { BuildEvent } from "../../agent/src/docker/types.ts";
import { hungEngine, type HungEngine } from "../support/hung-engine.ts";

const run = promisify(execFile);

function frame(type: number, payload: string | Buffer): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

/** What a demuxer made of `chunks`: runs of one stream merged, so only the bytes and their order count. */
function demux(chunks: Buffer[]): [OutputStream, string][] {
  const out: [OutputStream, string][] = [];
  const d = new FrameDemuxer((stream, bytes) => {
    const last = out.at(-1);
    if (last?.[0] === stream) last[1] += bytes.toString("latin1");
    else out.push([stream, bytes.toString("latin1")]);
  });
  for (const c of chunks) d.write(c);
  return out;
}

describe("FrameDemuxer", () => {
  const long = "x".repeat(300) + "\n";
  const wire = Buffer.concat([frame(1, "hello\n"), frame(2, "oops\n"), frame(1, ""), frame(1, long), frame(1, Buffer.from([0, 0xff, 1, 2])), frame(3, "engine said no"), frame(0, "stdin echo")]);
  const expected: [OutputStream, string][] = [
    ["stdout", "hello\n"],
    ["stderr", "oops\n"],
    ["stdout", long + "\x00\xff\x01\x02"],
    ["stderr", "engine said no"],
    ["stdout", "stdin echo"],
  ];

  it("splits stdout from stderr, in order, with the system error stream as stderr", () => {
    expect(demux([wire])).toEqual(expected);
  });

  it("gets the same bytes however the chunks fall: split at every offset, and a byte at a time", () => {
    for (let at = 0; at <= wire.length; at++) {
      expect({ at, out: demux([wire.subarray(0, at), wire.subarray(at)]) }).toEqual({ at, out: expected });
    }
    expect(demux([...wire].map((b) => Buffer.from([b])))).toEqual(expected);
  });
});

describe("engineAddress", () => {
  it("reads DOCKER_HOST as the docker CLI does, defaulting to the local socket", () => {
    expect(engineAddress({})).toEqual({ socketPath: "/var/run/docker.sock" });
    expect(engineAddress({ DOCKER_HOST: "unix:///run/user/1000/docker.sock" })).toEqual({ socketPath: "/run/user/1000/docker.sock" });
    expect(engineAddress({ DOCKER_HOST: "tcp://10.0.0.5:2385" })).toEqual({ host: "10.0.0.5", port: 2385 });
    expect(engineAddress({ DOCKER_HOST: "tcp://docker" })).toEqual({ host: "docker", port: 2375 });
    expect(engineAddress({ DOCKER_HOST: "tcp://[::1]:80" })).toEqual({ host: "::1", port: 80 });
  });

  it("refuses what it would have to speak in clear or cannot speak", () => {
    expect(() => engineAddress({ DOCKER_HOST: "tcp://docker:2376", DOCKER_TLS_VERIFY: "1" })).toThrow(/DOCKER_TLS_VERIFY/);
    expect(() => engineAddress({ DOCKER_HOST: "ssh://me@host" })).toThrow(/not supported/);
  });
});

describe("negotiateApiVersion", () => {
  it("speaks 1.41 where the engine serves it, else the nearest version it does serve", () => {
    expect(negotiateApiVersion({ ApiVersion: "1.41", MinAPIVersion: "1.12" })).toBe("1.41");
    expect(negotiateApiVersion({ ApiVersion: "1.47", MinAPIVersion: "1.24" })).toBe("1.41");
    expect(negotiateApiVersion({ ApiVersion: "1.52", MinAPIVersion: "1.44" })).toBe("1.44");
    expect(negotiateApiVersion({ ApiVersion: "1.40", MinAPIVersion: "1.12" })).toBe("1.40");
    expect(negotiateApiVersion({ ApiVersion: "1.43" })).toBe("1.41");
  });
});

describe("DockerEngine against an engine that does not answer", () => {
  let engine: HungEngine;
  afterEach(() => engine.close());

  it("fails every call with a timeout naming it, the API version's first", async () => {
    engine = await hungEngine();
    const docker = new DockerEngine({ socketPath: engine.socketPath }, { callTimeoutMs: 100 });
    await expect(docker.ping()).rejects.toEqual(new DockerTimeoutError("GET /_ping", 100));
    await expect(docker.createContainer({ Image: "gridx/python:latest" })).rejects.toEqual(new DockerTimeoutError("GET /version", 100));
  });

  it("fails each call, short or long-lived, with a timeout naming it when the engine hangs after telling its version", async () => {
    engine = await hungEngine((path, res) => path === "/version" && (res.end('{"ApiVersion":"1.41"}'), true));
    const docker = new DockerEngine({ socketPath: engine.socketPath }, { callTimeoutMs: 100 });
    const calls: [string, () => Promise<unknown>][] = [
      ["POST /containers/create", () => docker.createContainer({ Image: "gridx/python:latest" })],
      ["POST /containers/c1/attach", () => docker.attachContainer("c1")],
      ["POST /containers/c1/start", () => docker.startContainer("c1")],
      ["POST /containers/c1/wait", () => docker.waitContainer("c1")],
      ["GET /containers/c1/json", () => docker.inspectContainer("c1")],
      ["POST /containers/c1/update", () => docker.updateContainer("c1", { PidsLimit: 64 })],
      ["POST /containers/c1/rename", () => docker.renameContainer("c1", "c2")],
      ["DELETE /containers/c1", () => docker.removeContainer("c1")],
      ["GET /containers/json", () => docker.listContainers(["gridx.managed=true"])],
      ["GET /images/gridx/python:latest/json", () => docker.inspectImage("gridx/python:latest")],
      ["GET /images/json", () => docker.listImages(["gridx.env_key"])],
    ];
    const settled = await Promise.allSettled(calls.map(([, call]) => call()));
    expect(settled).toEqual(calls.map(([name]) => ({ status: "rejected", reason: new DockerTimeoutError(name, 100) })));
    // A stop waits its grace by design, on top of the call's own time.
    await expect(docker.stopContainer("c1", 0.2)).rejects.toEqual(new DockerTimeoutError("POST /containers/c1/stop", 300));
  });

  it("bounds a short call's body, and a long-lived one's only until it begins", async () => {
    engine = await hungEngine((path, res) => {
      if (path === "/version") res.end('{"ApiVersion":"1.41"}');
      else if (path === "/containers/c1/json") res.writeHead(200).flushHeaders();
      else if (path === "/containers/c1/wait") {
        res.writeHead(200).flushHeaders();
        // Well past the call's timeout: a wait's body comes when the container stops.
        setTimeout(() => res.end('{"StatusCode":4}'), 300);
      } else return false;
      return true;
    });
    const docker = new DockerEngine({ socketPath: engine.socketPath }, { callTimeoutMs: 100 });
    await expect(docker.inspectContainer("c1")).rejects.toEqual(new DockerTimeoutError("GET /containers/c1/json", 100));
    expect(await docker.waitContainer("c1")).toBe(4);
  });
});

describe("DockerEngine on the real engine", () => {
  const docker = new DockerEngine();

  it("says what is missing with Docker's message and a 404", async () => {
    await docker.ping();
    const err = await docker.inspectImage("gridx/not-built:never").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DockerError);
    expect(err).toMatchObject({ status: 404, message: expect.stringContaining("gridx/not-built:never") });
    await expect(docker.removeContainer("gridx-no-such-container")).rejects.toMatchObject({ status: 404, message: expect.stringMatching(/no such container/i) });
  });

  it("attached before the start, gets all of stdout and stderr apart, then the exit code", async () => {
    const script = "import sys\nfor i in range(2000): print('out', i); print('err', i, file=sys.stderr)\nsys.exit(7)";
    const id = await docker.createContainer({ name: `gridx-engine-test-${Date.now()}`, Image: "gridx/python:latest", Entrypoint: ["python3", "-c", script], AttachStdout: true, AttachStderr: true, Tty: false, HostConfig: { NetworkMode: "none", LogConfig: { Type: "none", Config: {} } } });
    try {
      const stream = await docker.attachContainer(id);
      const got = { stdout: "", stderr: "" };
      const d = new FrameDemuxer((name, bytes) => (got[name] += bytes.toString()));
      stream.on("data", (c: Buffer) => d.write(c));
      const ended = new Promise((resolve) => stream.on("end", resolve));
      await docker.startContainer(id);
      expect(await docker.waitContainer(id)).toBe(7);
      await ended;
      const lines = (name: string) => Array.from({ length: 2000 }, (_, i) => `${name} ${i}\n`).join("");
      expect(got.stdout).toBe(lines("out"));
      expect(got.stderr).toBe(lines("err"));
      expect(await docker.inspectContainer(id)).toMatchObject({ Id: id, State: { OOMKilled: false } });
    } finally {
      await docker.removeContainer(id);
    }
    await expect(docker.inspectContainer(id)).rejects.toMatchObject({ status: 404 });
  });

  it("changes a running container's limits and its name", async () => {
    const id = await docker.createContainer({ name: `gridx-engine-test-${Date.now()}`, Image: "gridx/python:latest", Entrypoint: ["sleep", "30"], HostConfig: { NetworkMode: "none", Memory: 512 << 20, MemorySwap: 512 << 20, NanoCpus: 1e9, PidsLimit: 256 } });
    try {
      await docker.startContainer(id);
      await docker.updateContainer(id, { Memory: 64 << 20, MemorySwap: 64 << 20, NanoCpus: 5e8, PidsLimit: 32 });
      const renamed = `gridx-engine-renamed-${Date.now()}`;
      await docker.renameContainer(id, renamed);
      // Fields the agent itself never reads, so not in ContainerInspect.
      const seen = (await docker.inspectContainer(id)) as unknown as { Name: string; HostConfig: Record<string, number> };
      expect(seen.Name).toBe(`/${renamed}`);
      expect(seen.HostConfig).toMatchObject({ Memory: 64 << 20, MemorySwap: 64 << 20, NanoCpus: 5e8, PidsLimit: 32 });
    } finally {
      await docker.removeContainer(id);
    }
  });

  describe("builds", () => {
    const context = (dockerfile: string) => {
      const dir = mkdtempSync(join(tmpdir(), "gridx-build-"));
      writeFileSync(join(dir, "env.Dockerfile"), dockerfile);
      return spawn("tar", ["-c", "-C", dir, "."], { stdio: ["ignore", "pipe", "ignore"] }).stdout;
    };
    const build = async (dockerfile: string, tag: string, labels: Record<string, string> = {}, signal?: AbortSignal) => {
      const events: BuildEvent[] = [];
      await docker.buildImage(context(dockerfile), { tag, dockerfile: "env.Dockerfile", labels, signal }, (e) => events.push(e));
      return events;
    };

    it("builds a labelled image from a tar context, and lists it by label", async () => {
      const tag = `gridx-engine-test:${Date.now()}`;
      const key = `k${Date.now()}`;
      try {
        const events = await build("FROM gridx/python:latest\nLABEL gridx.engine-test=yes\n", tag, { "gridx.engine-test-key": key });
        expect(events.some((e) => e.error)).toBe(false);
        expect(events.map((e) => e.stream ?? "").join("")).toContain(`Successfully tagged ${tag}`);
        const found = await docker.listImages([`gridx.engine-test-key=${key}`]);
        expect(found.map((i) => i.Labels)).toEqual([{ "gridx.engine-test": "yes", "gridx.engine-test-key": key }]);
      } finally {
        await run("docker", ["rmi", "-f", tag]).catch(() => undefined);
      }
    });

    it("reports a failed step as an error event with Docker's message and the step's output", async () => {
      const events = await build("FROM gridx/python:latest\nRUN echo about-to-fail && exit 3\n", `gridx-engine-test:fail-${Date.now()}`);
      expect(events.map((e) => e.stream ?? "").join("")).toContain("about-to-fail");
      expect(events.find((e) => e.error)?.errorDetail?.message).toMatch(/returned a non-zero code: 3/);
    });

    it("stops waiting for a build when its signal aborts", async () => {
      const abort = new AbortController();
      const events: BuildEvent[] = [];
      const started = Date.now();
      const done = docker.buildImage(context("FROM gridx/python:latest\nRUN sleep 20\n"), { tag: `gridx-engine-test:abort-${Date.now()}`, dockerfile: "env.Dockerfile", labels: {}, signal: abort.signal }, (e) => {
        events.push(e);
        if (e.stream?.includes("Running in")) abort.abort();
      });
      await expect(done).rejects.toThrow(/abort/i);
      expect(Date.now() - started).toBeLessThan(15_000);
    });
  });
});
