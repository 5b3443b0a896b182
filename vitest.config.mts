import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const migrations = await readD1Migrations(fileURLToPath(new URL("./migrations", import.meta.url)));

export default defineConfig({
  test: {
    projects: [
      {
        // Inside workerd: the API, the coordinator Durable Object, D1 — the real runtime.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              // An empty database the upgrade test migrates step by step, as a deployment is.
              d1Databases: ["UPGRADE_DB"],
              bindings: {
                MIGRATIONS: migrations,
                GRIDX_ADMIN_TOKEN: "test-admin-token",
                // 32 bytes, base64: seals project secrets.
                SECRETS_KEY: "dGVzdC1zZWNyZXRzLWtleS0zMi1ieXRlcy1sb25nISE=",
                // Short enough that heartbeat expiry tests run in seconds.
                WORKER_TIMEOUT_S: "2",
                HELLO_TIMEOUT_S: "1",
                HEARTBEAT_INTERVAL_S: "1",
                DEADLINE_GRACE_S: "1",
                // An assignment not taken in 3 s is taken back; a taken one must start in 6 s.
                START_TIMEOUT_S: "3",
                PREPARE_TIMEOUT_S: "6",
                // The fault suite's D1 fault hook (routes/faults.ts); never set in wrangler.toml.
                GRIDX_FAULTS: "on",
                // Fake agents say "test" (no version, never refused); agent-version tests say 0.0.1 and 0.2.9.
                AGENT_MIN_VERSION: "0.0.5",
                AGENT_RECOMMENDED_VERSION: "0.3.0",
                ALLOWED_IMAGES: "gridx/python:latest,busybox:1",
                POOL_POLICIES: "rr=round-robin",
                // Presigning needs only an endpoint and keys; the bytes tests run end to end.
                S3_ENDPOINT: "http://127.0.0.1:9/cdn-cgi/local/r2/s3",
                S3_ACCESS_KEY_ID: "test-key",
                S3_SECRET_ACCESS_KEY: "test-secret",
                MULTIPART_THRESHOLD_MB: "10",
                PART_SIZE_MB: "5",
                // User tokens keep their defaults (20/s, bursts of 100): above what any file asks of one
                // token. An agent token's are cut to the same, so rate-limits.test.ts can drain one.
                AGENT_RATE_LIMIT_RPS: "20",
                AGENT_RATE_LIMIT_BURST: "100",
                // Small bounds, so realtime.test.ts moves logs to R2 and resumes streams in seconds.
                LOG_D1_WINDOW_BYTES: "131072",
                LOG_SEGMENT_BYTES: "32768",
                LOG_PAGE_BYTES: "65536",
                FOLLOW_MAX_S: "3",
                FOLLOW_KEEPALIVE_S: "1",
                FOLLOW_BACKSTOP_S: "1",
                // Webhook tests deliver to a receiver on 127.0.0.1 and see retries within seconds.
                WEBHOOK_ALLOW_TARGETS: "loopback",
                WEBHOOK_BACKOFF_S: "1",
                // Autoscaling hooks call within a sweep or two (autoscale.test.ts); the cooldown outlasts a test.
                SCALE_UP_AFTER_S: "1",
                SCALE_DOWN_AFTER_S: "1",
                SCALE_COOLDOWN_S: "60",
                // The test clock: one cron minute is a second, so `* * * * *` fires every second (schedules.test.ts).
                SCHEDULE_MINUTE_S: "1",
                // Small tunnel bounds, so tunnel.test.ts reaches them with a few requests and small messages.
                TUNNEL_STREAMS_PER_JOB: "4",
                TUNNEL_WS_MESSAGE_BYTES: "100000",
              },
            },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/control-plane/**/*.test.ts"],
          // workerd sees no host environment: the fuzz suite's replay settings travel this way.
          provide: { fuzz: { seed: process.env.FUZZ_SEED ?? "", path: process.env.FUZZ_PATH ?? "", runs: process.env.FUZZ_RUNS ?? "" } },
          setupFiles: ["./test/setup/apply-migrations.ts"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "node",
          include: ["test/agent/**/*.test.ts", "test/protocol/**/*.test.ts", "test/scripts/**/*.test.ts", "test/cli/**/*.test.ts"],
          environment: "node",
          testTimeout: 30_000,
        },
      },
      {
        // The real pieces: wrangler dev, agents as processes, the Docker engine.
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          globalSetup: ["./test/e2e/global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
