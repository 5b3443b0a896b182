/**
 * A real image registry for tests: Debian's `docker-registry` (distribution 2.x) on
 * 127.0.0.1, with htpasswd (bcrypt) logins and storage in a temp folder. dockerd treats
 * 127.0.0.0/8 registries as insecure-allowed, so it is spoken to in plain HTTP.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { engineAddress, registryAuthHeader } from "../../agent/src/docker/engine.ts";
import { freePort } from "../../scripts/local-grid.ts";
import { pollUntil } from "../helpers/poll.ts";

const run = promisify(execFile);

export interface Login {
  username: string;
  password: string;
}

export interface LocalRegistry {
  /** `127.0.0.1:PORT`: the first part of every image name in it. */
  host: string;
  /** Tags `local` as `name` in this registry, pushes it with `login`, and returns the pushed digest (`sha256:…`). */
  push(local: string, name: string, login: Login): Promise<string>;
  /** Stops the registry (by its PID) and removes its storage. */
  close(): Promise<void>;
}

/** Starts a registry that lets in `login` only; resolves once it answers. */
export async function startRegistry(login: Login): Promise<LocalRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "gridx-registry-"));
  mkdirSync(join(dir, "data"));
  writeFileSync(join(dir, "htpasswd"), execFileSync("htpasswd", ["-Bbn", login.username, login.password], { encoding: "utf8" }));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  writeFileSync(
    join(dir, "config.yml"),
    [
      "version: 0.1",
      "log: { level: warn }",
      `storage: { filesystem: { rootdirectory: ${join(dir, "data")} } }`,
      `http: { addr: "${host}" }`,
      `auth: { htpasswd: { realm: gridx-test, path: ${join(dir, "htpasswd")} } }`,
    ].join("\n"),
  );
  const child = spawn("docker-registry", ["serve", join(dir, "config.yml")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => void (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const answers = async () => {
    if (child.exitCode !== null) throw new Error(`docker-registry exited ${child.exitCode}: ${stderr}`);
    return fetch(`http://${host}/v2/`).then((r) => r.status, () => 0);
  };
  await pollUntil(answers, (status) => status === 401, { timeoutMs: 15_000, intervalMs: 50, what: `docker-registry on ${host}` });
  return {
    host,
    push: async (local, name, l) => {
      await run("docker", ["tag", local, name]);
      const at = name.lastIndexOf(":");
      return pushImage(name.slice(0, at), name.slice(at + 1), { ...l, serveraddress: host });
    },
    close: async () => {
      if (child.exitCode === null) {
        process.kill(child.pid!);
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `POST /images/{name}/push` on the local engine; the digest the registry took it under. */
function pushImage(repository: string, tag: string, auth: Login & { serveraddress: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      { ...engineAddress(process.env), method: "POST", path: `/images/${repository}/push?tag=${encodeURIComponent(tag)}`, headers: { "x-registry-auth": registryAuthHeader(auth) } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => {
          const events = body
            .split("\n")
            .filter((l) => l.trim())
            .map((l) => JSON.parse(l) as { error?: string; message?: string; aux?: { Digest?: string } });
          const failed = events.find((e) => e.error || e.message);
          const digest = events.find((e) => e.aux?.Digest)?.aux?.Digest;
          if (res.statusCode !== 200 || failed || !digest) reject(new Error(`push of ${repository}:${tag} failed: ${failed?.error ?? failed?.message ?? body}`));
          else resolve(digest);
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/**
 * Builds `tag`, a small image to push: `cat` and the libraries it loads, `files` at `/`, and
 * nothing else, so a test's push moves megabytes, not the python image's 160.
 */
export async function buildCatImage(tag: string, files: Record<string, string | Buffer>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "gridx-image-"));
  const dockerfile = [
    "FROM gridx/python:latest AS src",
    "USER root",
    "RUN mkdir /out && cp --parents /bin/cat $(ldd /bin/cat | grep -o '/[^ ]*') /out/",
    "FROM scratch",
    "COPY --from=src /out/ /",
    `COPY ${Object.keys(files).join(" ")} /`,
  ].join("\n");
  try {
    writeFileSync(join(dir, "Dockerfile"), dockerfile);
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    await run("docker", ["build", "--network", "none", "-q", "-t", tag, dir]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Removes images by name or id, those already gone included. */
export async function removeImages(...refs: string[]): Promise<void> {
  for (const ref of refs) await run("docker", ["rmi", "-f", ref]).catch(() => undefined);
}
