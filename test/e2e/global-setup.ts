import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { ensureRunnerImages, runCommand, startControlPlane, writeSecretsFile, type ControlPlane } from "../../scripts/local-grid.ts";

declare module "vitest" {
  export interface ProvidedContext {
    controlPlane: { url: string; adminToken: string; stateDir: string };
  }
}

/** Timings shortened so that lost-worker tests take seconds, not minutes. */
export const E2E_VARS = {
  WORKER_TIMEOUT_S: "6",
  HEARTBEAT_INTERVAL_S: "2",
  DEADLINE_GRACE_S: "5",
  // The runner image's base is on the machine too; an agent may still refuse it (its --allow-image).
  ALLOWED_IMAGES: "gridx/python:latest,python:3.11-slim-bookworm",
  // The fault suite's hook, POST /v1/test/faults (routes/faults.ts); never set in wrangler.toml.
  GRIDX_FAULTS: "on",
  // Webhook retries within seconds, and events found without a poke within a second.
  WEBHOOK_BACKOFF_S: "1",
  WEBHOOK_SCAN_S: "1",
  // Port links expire within the interactive-session suite's patience.
  PORT_LINK_TTL_S: "10",
  // A pool's autoscaling hook calls once a job has waited a second (only autoscale.test.ts sets one).
  SCALE_UP_AFTER_S: "1",
};

let cp: ControlPlane | undefined;
let dir: string | undefined;

export async function setup(project: TestProject) {
  try {
    await runCommand("docker", ["info"]);
  } catch (err) {
    throw new Error(`the end-to-end tests need a running Docker engine (start dockerd): ${(err as Error).message}`, { cause: err });
  }
  await ensureRunnerImages();
  dir = mkdtempSync(join(tmpdir(), "gridx-e2e-"));
  const adminToken = "e2e-admin-" + Math.random().toString(36).slice(2);
  cp = await startControlPlane({ adminToken, secretsFile: writeSecretsFile(join(dir, "secrets.env"), adminToken), persistTo: join(dir, "state"), vars: E2E_VARS });
  project.provide("controlPlane", { url: cp.url, adminToken, stateDir: dir });
}

export async function teardown() {
  await cp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
