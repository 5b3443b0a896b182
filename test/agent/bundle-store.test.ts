import { createHash } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundlePath, stateFile, type BundleState } from "../../agent/bin/bundle-choice.mjs";
import { silentLogger } from "../../agent/src/logger.ts";
import { BundleStore } from "../../agent/src/upgrade/bundle-store.ts";

const body = Buffer.from("export {}; // agent 2.0.0\n");
const sha = createHash("sha256").update(body).digest("hex");
const server = createServer((_req, res) => void res.writeHead(200, { "content-length": body.length }).end(body));
let url = "";
beforeAll(async () => {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bundle`;
});
afterAll(() => void server.close());

const store = (version: string, stateDir = mkdtempSync(join(tmpdir(), "gridx-bundles-"))) => ({ stateDir, store: new BundleStore({ stateDir, version, confirmS: 60, http: {}, log: silentLogger }) });
const order = (over = {}) => ({ version: "2.0.0", sha256: sha, size: body.length, url, ...over });
const stateOf = (dir: string) => JSON.parse(readFileSync(stateFile(dir), "utf8")) as BundleState;

describe("BundleStore", () => {
  it("fetches and checks a bundle, installs it pending, and makes it current once the new agent connects", async () => {
    const { stateDir, store: old } = store("1.0.0");
    await old.fetch(order());
    expect(readFileSync(bundlePath(stateDir, "2.0.0")).equals(body)).toBe(true);
    await old.install(order());
    expect(stateOf(stateDir).pending).toEqual({ version: "2.0.0", path: bundlePath(stateDir, "2.0.0"), confirm_s: 60, started_at: null });

    // An earlier bundle, neither current nor previous, is removed once the new one is confirmed.
    mkdirSync(join(stateDir, "bundles", "0.9.0"));
    writeFileSync(join(stateDir, "bundles", "0.9.0", "gridx-agent.mjs"), "old");
    expect(await store("2.0.0", stateDir).store.connected()).toBeNull();
    expect(stateOf(stateDir)).toMatchObject({ current: { version: "2.0.0" }, pending: null });
    expect(readdirSync(join(stateDir, "bundles")).sort()).toEqual(["2.0.0", "state.json"]);
  });

  it("refuses a bundle whose SHA-256 is not the one the control plane holds, and keeps nothing of it", async () => {
    const { stateDir, store: s } = store("1.0.0");
    await expect(s.fetch(order({ sha256: "0".repeat(64) }))).rejects.toThrow(/SHA-256 is [0-9a-f]{64}, the control plane holds 0{64}; refused, staying on 1\.0\.0/);
    expect(existsSync(bundlePath(stateDir, "2.0.0"))).toBe(false);
    expect(existsSync(`${bundlePath(stateDir, "2.0.0")}.part`)).toBe(false);
    expect(existsSync(stateFile(stateDir))).toBe(false);
  });

  it("tells a rollback the launcher made once, after the next hello", async () => {
    const { stateDir, store: s } = store("1.0.0");
    mkdirSync(join(stateDir, "bundles"), { recursive: true });
    writeFileSync(stateFile(stateDir), JSON.stringify({ current: null, previous: null, pending: null, rolled_back: { version: "2.0.0", reason: "exited with status 1", at: 1, reported: false } }));
    expect(await s.connected()).toEqual({ version: "2.0.0", state: "rolled_back", reason: "exited with status 1" });
    expect(await s.connected()).toBeNull();
  });
});
