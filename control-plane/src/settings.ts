import { z } from "zod";
import { LOG_LIMITS, TUNNEL_LIMITS } from "../../protocol/index.ts";
import { POLICIES, type Policy } from "./coordinator/scheduler.ts";

const seconds = (fallback: number) => z.coerce.number().positive().default(fallback);

const PolicyMap = z
  .string()
  .default("")
  .transform((raw, ctx) => {
    const map: Record<string, Policy> = {};
    for (const entry of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
      const [pool, policy] = entry.split("=").map((s) => s.trim());
      if (!pool || !POLICIES.includes(policy as Policy)) {
        ctx.addIssue({ code: "custom", message: `POOL_POLICIES entry "${entry}" is not pool=${POLICIES.join("|")}` });
        return z.NEVER;
      }
      map[pool] = policy as Policy;
    }
    return map;
  });

/** The control plane's settings, read from wrangler vars; every limit has a visible default. */
export const SettingsSchema = z.object({
  HEARTBEAT_INTERVAL_S: seconds(15),
  WORKER_TIMEOUT_S: seconds(90),
  HELLO_TIMEOUT_S: seconds(10),
  DEADLINE_GRACE_S: seconds(60),
  /** An assignment the agent neither takes (job_accepted) nor starts this soon is taken back and requeued. */
  START_TIMEOUT_S: seconds(60),
  /** A taken assignment must start (inputs fetched, code checked out, environment built) this soon. */
  PREPARE_TIMEOUT_S: seconds(3600),
  ALLOWED_IMAGES: z
    .string()
    .default("gridx/python:latest")
    .transform((s) => s.split(",").map((i) => i.trim()).filter(Boolean)),
  POOL_POLICIES: PolicyMap,
  /**
   * Fair share forgets a project's past use of a pool at this rate: its decayed slot-seconds
   * halve every half-life. An hour outlasts most runs, so a long job's use is not forgotten
   * before it ends, and a morning's burst no longer counts by the afternoon (1/16 after 4 h).
   */
  FAIR_SHARE_HALF_LIFE_S: seconds(3600),
  /** Autoscaling hooks (docs/autoscaling.md): a queued job no online worker takes counts toward a scale_up call once it has waited this long. */
  SCALE_UP_AFTER_S: seconds(60),
  /** A worker that held no attempt this long is named in a scale_down hint. */
  SCALE_DOWN_AFTER_S: seconds(600),
  /** Calls of one kind to one pool's hook come at least this far apart; a failed call is retried only within it. */
  SCALE_COOLDOWN_S: seconds(300),
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** R2's S3 API, path-style: https://<account>.r2.cloudflarestorage.com, or wrangler dev's /cdn-cgi/local/r2/s3. */
  S3_ENDPOINT: z.string().default(""),
  S3_BUCKET: z.string().default("gridx"),
  S3_ACCESS_KEY_ID: z.string().default(""),
  S3_SECRET_ACCESS_KEY: z.string().default(""),
  /** Presigned URLs live this long by default, and never longer than an hour. */
  URL_TTL_S: z.coerce.number().int().min(1).max(3600).default(900),
  /** Uploads above this size are multipart. */
  MULTIPART_THRESHOLD_MB: z.coerce.number().positive().default(64),
  PART_SIZE_MB: z.coerce.number().min(5).max(5120).default(16),
  MAX_DATASET_MB: z.coerce.number().positive().default(50 * 1024),
  MAX_JOB_OUTPUT_MB: z.coerce.number().positive().default(10 * 1024),
  /** An upload not completed within this many hours is aborted and its dataset deleted. */
  ABANDONED_UPLOAD_H: z.coerce.number().positive().default(24),
  /** Days a finished job's logs, its artifacts, and the job itself are kept (0: forever); a project may set its own (docs/retention.md). */
  RETENTION_LOGS_DAYS: z.coerce.number().min(0).max(36500).default(30),
  RETENTION_ARTIFACTS_DAYS: z.coerce.number().min(0).max(36500).default(30),
  RETENTION_JOBS_DAYS: z.coerce.number().min(0).max(36500).default(90),
  /** Jobs one retention sweep (each cron run) handles at most; the rest wait for the next run. */
  RETENTION_SWEEP_BATCH: z.coerce.number().int().min(1).max(5000).default(500),
  /** Daily D1 backups kept in R2 (`backups/YYYY-MM-DD.sql`) and by `npm run backup` in its folder; older ones are deleted. */
  BACKUP_KEEP_DAYS: z.coerce.number().int().min(1).default(7),
  /** Rows a backup reads from D1 at once: with BACKUP_PART_MB, what it holds in memory. */
  BACKUP_PAGE_ROWS: z.coerce.number().int().min(1).max(10_000).default(100),
  /** A backup is written to R2 in parts of this size (R2's minimum is 5). */
  BACKUP_PART_MB: z.coerce.number().int().min(5).max(100).default(8),
  /** A dashboard sign-in lasts this many hours (never longer than the token it was made with). */
  DASHBOARD_SESSION_H: z.coerce.number().positive().max(24 * 30).default(12),
  /** Requests per second an API token or a dashboard session may make, and how many at once. */
  RATE_LIMIT_RPS: z.coerce.number().positive().default(20),
  RATE_LIMIT_BURST: z.coerce.number().int().min(1).default(100),
  /** An agent token's HTTP calls (its socket is not counted); one token usually serves a whole pool. */
  AGENT_RATE_LIMIT_RPS: z.coerce.number().positive().default(200),
  AGENT_RATE_LIMIT_BURST: z.coerce.number().int().min(1).default(2000),
  /** The admin token: limited too, high, so a runaway script cannot starve D1 for every project. */
  ADMIN_RATE_LIMIT_RPS: z.coerce.number().positive().default(500),
  ADMIN_RATE_LIMIT_BURST: z.coerce.number().int().min(1).default(5000),
  /** Failed authentications per client address per minute; past it every token from there gets 429. */
  AUTH_FAILURES_PER_MIN: z.coerce.number().int().min(1).default(30),
  /** "off" only to measure what the limits cost (`npm run bench`). */
  RATE_LIMITS: z.enum(["on", "off"]).default("on"),
  /** A follow stream (logs, events) ends after this long with a `resume` event; the client goes on from its cursor. */
  FOLLOW_MAX_S: seconds(3600),
  /** A follow stream with nothing to say sends a comment this often, so proxies keep it open. */
  FOLLOW_KEEPALIVE_S: seconds(15),
  /** While a stream has followers it looks in D1 this often for what a lost notice did not bring. */
  FOLLOW_BACKSTOP_S: seconds(5),
  /** D1 keeps at most about this much of each attempt's log; older batches move to R2 in segments. */
  LOG_D1_WINDOW_BYTES: z.coerce.number().int().min(64 * 1024).default(4 * 1024 * 1024),
  /** The size of one R2 log segment (one object, read whole by a page). */
  LOG_SEGMENT_BYTES: z.coerce.number().int().min(16 * 1024).default(1024 * 1024),
  /** The most log text one page of `GET /v1/jobs/:id/logs` returns (at least one batch). */
  LOG_PAGE_BYTES: z.coerce.number().int().min(64 * 1024).default(1024 * 1024),
  /** A job's log cap, sent to the agent with each assignment: past it lines are counted in a marker, not kept. */
  LOG_MAX_BYTES: z.coerce.number().int().min(0).max(LOG_LIMITS.max_bytes).default(100 * 1024 * 1024),
  /** Open tunnel streams (port requests, WebSockets, execs) at once per job, and per agent connection; past either, 429. */
  TUNNEL_STREAMS_PER_JOB: z.coerce.number().int().min(1).default(TUNNEL_LIMITS.defaults.streams_per_job),
  TUNNEL_STREAMS_PER_AGENT: z.coerce.number().int().min(1).default(TUNNEL_LIMITS.defaults.streams_per_agent),
  /** Bytes per second one job's port (or exec) session moves, both ways together; past it credit comes later (back-pressure, not errors). */
  TUNNEL_SESSION_BYTES_PER_S: z.coerce.number().int().min(TUNNEL_LIMITS.chunk_bytes).default(TUNNEL_LIMITS.defaults.session_bytes_per_s),
  /** A request body through a port (413 past it), and one WebSocket message either way (closed 1009 past it). */
  TUNNEL_REQUEST_BYTES: z.coerce.number().int().min(0).default(TUNNEL_LIMITS.defaults.request_bytes),
  TUNNEL_WS_MESSAGE_BYTES: z.coerce.number().int().min(1).default(TUNNEL_LIMITS.defaults.ws_message_bytes),
  /** How long the agent has to answer a stream's open (504 past it). */
  TUNNEL_OPEN_TIMEOUT_S: seconds(TUNNEL_LIMITS.defaults.open_timeout_s),
  /** Agents older than this are refused at hello, told what to install, and stop (empty: none refused). */
  AGENT_MIN_VERSION: z.string().regex(/^$|^\d+\.\d+\.\d+$/, "MAJOR.MINOR.PATCH, or empty").default(""),
  /** Agents older than this run, shown `outdated` (GET /v1/workers, gridx workers --outdated); empty: none. */
  AGENT_RECOMMENDED_VERSION: z.string().regex(/^$|^\d+\.\d+\.\d+$/, "MAJOR.MINOR.PATCH, or empty").default(""),
  /** The largest agent bundle POST /v1/agent-bundles accepts (docs/upgrades.md). */
  AGENT_BUNDLE_MAX_MB: z.coerce.number().positive().max(1024).default(64),
  /** The most workers one broadcast (POST /v1/pools/:pool/broadcast) makes jobs for. */
  BROADCAST_MAX_WORKERS: z.coerce.number().int().min(1).max(10_000).default(256),
  /** A one-time port link's life. */
  PORT_LINK_TTL_S: z.coerce.number().int().min(1).max(3600).default(TUNNEL_LIMITS.link_ttl_s),
  /**
   * A wildcard domain (`ports.example.com`, DNS `*.ports.example.com` routed to this worker) that
   * serves each job's port at its own host, `p<port>-j-<id>.<domain>`: its own origin, so a page a
   * job serves cannot script the dashboard (docs/security.md). Empty: ports are served under the
   * control plane's own origin, at /v1/jobs/:id/ports/:port/.
   */
  PORTS_DOMAIN: z
    .string()
    .regex(/^$|^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/, "a domain such as ports.example.com")
    .default(""),
});
export type Settings = z.infer<typeof SettingsSchema>;

const cache = new WeakMap<object, Settings>();

/** Parses the settings once per env object; a bad var is a deploy error, so it throws. */
export function settingsOf(env: Env): Settings {
  let s = cache.get(env);
  if (!s) {
    s = SettingsSchema.parse(env);
    cache.set(env, s);
  }
  return s;
}

export function policyFor(settings: Settings, pool: string): Policy {
  return settings.POOL_POLICIES[pool] ?? "first-idle";
}
