import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { Agent } from "../../agent/src/agent.ts";
import { loadConfig } from "../../agent/src/config.ts";
import { connectUrl } from "../../agent/src/connection.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { networkOptions, proxyFor } from "../../agent/src/network.ts";
import type { JobRunner } from "../../agent/src/runner/runner.ts";
import { AgentToCoordinator, decodeFrame, encode } from "../../protocol/index.ts";

describe("proxyFor", () => {
  const env = { HTTPS_PROXY: "http://proxy:3128", HTTP_PROXY: "http://plain:8080", NO_PROXY: "localhost,.internal.example,10.0.0.5:8787" };

  it("uses HTTPS_PROXY for wss/https and HTTP_PROXY for ws/http", () => {
    expect(proxyFor("wss://gridx.example.com/v1/agent/connect", env)).toBe("http://proxy:3128");
    expect(proxyFor("https://r2.example.com/bucket/key", env)).toBe("http://proxy:3128");
    expect(proxyFor("ws://gridx.example.com", env)).toBe("http://plain:8080");
  });

  it("honours NO_PROXY by host, suffix and port", () => {
    expect(proxyFor("ws://localhost:8787", env)).toBeNull();
    expect(proxyFor("wss://cp.internal.example", env)).toBeNull();
    expect(proxyFor("ws://10.0.0.5:8787", env)).toBeNull();
    expect(proxyFor("ws://10.0.0.5:9999", env)).toBe("http://plain:8080");
    expect(proxyFor("wss://a.example.com", { ...env, NO_PROXY: "*" })).toBeNull();
  });

  it("reads lower-case variables too, and nothing when none is set", () => {
    expect(proxyFor("wss://x.example", { https_proxy: "http://p:1" })).toBe("http://p:1");
    expect(proxyFor("wss://x.example", {})).toBeNull();
  });
});

let closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers = [];
});

const idleRunner: JobRunner = { run: () => new Promise(() => {}), cleanupLeftovers: async () => 0, start: () => undefined, close: async () => undefined, missingImages: async () => [], warm: async () => ({ envs: [], repos: [] }) };
const caps = { cpu_cores: 1, memory_mb: 512, gpus: [], nvidia_runtime: false, labels: {}, os: "Linux", arch: "x64", wsl: false, runtimes: ["runc" as const], egress: false, ports: false };

describe("the agent behind an HTTP proxy", () => {
  it("tunnels its WebSocket through HTTPS_PROXY with CONNECT", async () => {
    const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await once(wss, "listening");
    const hellos: string[] = [];
    wss.on("connection", (ws) =>
      ws.on("message", (raw) => {
        const [d] = decodeFrame(raw.toString(), AgentToCoordinator);
        if (!d) throw new Error("empty frame");
        if (d.ok && d.message.type === "hello") {
          hellos.push(d.message.payload.name);
          ws.send(encode({ type: "hello_ack", payload: { worker_id: "w", heartbeat_interval_s: 60, draining: false, batch_frames: false } }));
        }
      }),
    );
    const target = `http://127.0.0.1:${(wss.address() as AddressInfo).port}`;

    // A real forward proxy: it only knows CONNECT, and records where it was asked to go.
    const tunnels: string[] = [];
    const proxy: Server = createServer((_req, res) => res.writeHead(405).end());
    proxy.on("connect", (req, client, head) => {
      tunnels.push(req.url ?? "");
      const [host, port] = (req.url ?? "").split(":");
      const upstream = connect(Number(port), host!, () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
    });
    proxy.listen(0, "127.0.0.1");
    await once(proxy, "listening");
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

    const env = { HTTP_PROXY: proxyUrl };
    const agent = new Agent(
      { url: target, token: "gxa_0123456789", name: "proxied", slots: 1, version: "t", caps, connection: { wsOptions: networkOptions(connectUrl(target), env) } },
      idleRunner,
      silentLogger,
    );
    await agent.start();
    closers.push(
      () => agent.close(0),
      () => wss.close(),
      () => proxy.closeAllConnections(),
      () => proxy.close(),
    );
    const deadline = Date.now() + 5000;
    while (hellos.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(hellos).toEqual(["proxied"]);
    expect(tunnels).toEqual([new URL(target).host]);
  });

  it("adds an extra CA file to the trusted roots", () => {
    const dir = mkdtempSync(join(tmpdir(), "gridx-ca-"));
    const pem = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
    writeFileSync(join(dir, "corp.pem"), pem);
    const opts = networkOptions("wss://gridx.example.com", {}, join(dir, "corp.pem"));
    expect(opts.ca?.at(-1)).toBe(pem);
    expect(opts.ca!.length).toBeGreaterThan(1);
    expect(opts.agent).toBeUndefined();
  });
});

describe("config file", () => {
  it("is read, with the environment and flags over it", () => {
    const dir = mkdtempSync(join(tmpdir(), "gridx-cfg-"));
    const file = join(dir, "agent.json");
    writeFileSync(file, JSON.stringify({ url: "https://file.example", token: "gxa_fromfile123", name: "file-name", slots: 2, labels: { zone: "file" }, outputCapMb: 50 }));
    const fileOnly = loadConfig(["--config", file], {});
    expect(fileOnly).toMatchObject({ ok: true, configFile: file, config: { url: "https://file.example", name: "file-name", slots: 2, labels: { zone: "file" }, outputCapMb: 50, logCapMb: 100 } });
    const layered = loadConfig(["--config", file, "--slots", "8"], { GRIDX_SLOTS: "4", GRIDX_AGENT_NAME: "env-name" });
    expect(layered).toMatchObject({ ok: true, config: { slots: 8, name: "env-name", url: "https://file.example" } });
  });

  it("says which file is broken", () => {
    const dir = mkdtempSync(join(tmpdir(), "gridx-cfg-"));
    writeFileSync(join(dir, "bad.json"), "{nope");
    expect(loadConfig(["--config", join(dir, "bad.json")], {})).toMatchObject({ ok: false, error: expect.stringMatching(/bad\.json/) });
  });

  it("reads --once and image allowlists from flags or the environment", () => {
    const env = { GRIDX_URL: "http://x", GRIDX_AGENT_TOKEN: "gxa_0123456789", GRIDX_ALLOW_IMAGES: "a:1,b:2" };
    expect(loadConfig(["--once"], env)).toMatchObject({ ok: true, config: { once: true, allowImages: ["a:1", "b:2"] } });
    expect(loadConfig([], { ...env, GRIDX_ONCE: "true" })).toMatchObject({ ok: true, config: { once: true } });
    expect(loadConfig(["--allow-image", "c:3"], env)).toMatchObject({ ok: true, config: { once: false, allowImages: ["c:3"] } });
  });
});
