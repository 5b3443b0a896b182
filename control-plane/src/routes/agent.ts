import { Hono, type Context } from "hono";
import { z } from "zod";
import { ArtifactComplete, ArtifactPrepare } from "../../../protocol/index.ts";
import { sha256Hex } from "../auth/tokens.ts";
import { getAttempt } from "../db/attempts.ts";
import { recordArtifacts } from "../db/artifacts.ts";
import { createDb } from "../db/client.ts";
import { getWorker } from "../db/workers.ts";
import { jsonBody } from "../middleware/validate.ts";
import { settingsOf } from "../settings.ts";
import { ObjectStore } from "../storage/object-store.ts";
import { PROTOCOL_VERSION } from "../../../protocol/index.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { requireAuth } from "../middleware/auth.ts";

const MIB = 1024 * 1024;

/** Completion names the multipart upload each big artifact used. */
const ArtifactCompleteWithUploads = ArtifactComplete.extend({
  artifacts: z.array(ArtifactComplete.shape.artifacts.element.extend({ upload_id: z.string().max(1024).nullable().optional() })).max(1000),
});

/** The attempt must be this agent's, and still running or just finished on it. */
async function mustOwnAttempt(c: Context<AppEnv>, jobId: string, attempt: number) {
  const principal = c.get("principal");
  const db = createDb(c.env.DB);
  const a = await getAttempt(db, jobId, attempt);
  const worker = a ? await getWorker(db, a.workerId) : undefined;
  if (!a || !worker || principal.kind !== "agent" || worker.tokenId !== principal.tokenId || worker.pool !== principal.pool) {
    throw new AppError("forbidden", `attempt ${attempt} of job ${jobId} is not this agent's`);
  }
  if (a.status !== "assigned" && a.status !== "running" && a.status !== "canceling") throw new AppError("conflict", `attempt ${attempt} of job ${jobId} is over`);
  return { db, attempt: a };
}

const artifactKey = async (jobId: string, attempt: number, name: string) => `artifacts/${jobId}/${attempt}/${await sha256Hex(name)}`;

/** Agents dial in here; the socket is handed to the coordinator of the token's pool. */
export const agentRoutes = new Hono<AppEnv>()
  .post("/artifacts/prepare", requireAuth("agent"), async (c) => {
    const body = await jsonBody(c, ArtifactPrepare);
    await mustOwnAttempt(c, body.job_id, body.attempt);
    const settings = settingsOf(c.env);
    const total = body.files.reduce((n, f) => n + f.size, 0);
    if (total > settings.MAX_JOB_OUTPUT_MB * MIB) throw new AppError("payload_too_large", `files: a job's outputs are at most ${settings.MAX_JOB_OUTPUT_MB} MiB`, "files");
    const store = new ObjectStore(c.env.BUCKET, settings);
    const uploads = await Promise.all(
      body.files.map(async (f) => {
        const plan = await store.planUpload(await artifactKey(body.job_id, body.attempt, f.name), f.size);
        return { name: f.name, upload: plan.upload, upload_id: plan.uploadId };
      }),
    );
    return c.json({ uploads });
  })
  .post("/artifacts/complete", requireAuth("agent"), async (c) => {
    const body = await jsonBody(c, ArtifactCompleteWithUploads);
    const { db } = await mustOwnAttempt(c, body.job_id, body.attempt);
    const store = new ObjectStore(c.env.BUCKET, settingsOf(c.env));
    const now = Date.now();
    const rows = [];
    for (const a of body.artifacts) {
      const key = await artifactKey(body.job_id, body.attempt, a.name);
      const size = await store.complete(key, a.upload_id ?? null, a.parts);
      if (size !== a.size) throw new AppError("conflict", `artifact ${a.name}: ${size ?? 0} bytes stored, ${a.size} declared`);
      rows.push({ jobId: body.job_id, attempt: body.attempt, name: a.name, size: a.size, sha256: a.sha256, key, createdAt: now });
    }
    await recordArtifacts(db, rows);
    return c.json({ recorded: rows.length });
  })
  .get("/connect", requireAuth("agent"), async (c) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new AppError("validation_failed", "this route takes a WebSocket upgrade (Upgrade: websocket)", "Upgrade");
  }
  const asked = c.req.query("protocol");
  if (asked !== undefined && asked !== String(PROTOCOL_VERSION)) {
    throw new AppError("protocol_version_unsupported", `this control plane speaks protocol ${PROTOCOL_VERSION}, the agent speaks ${asked}: upgrade the agent`);
  }
  const principal = c.get("principal");
  if (principal.kind !== "agent") throw new AppError("forbidden", "agent tokens only");
  const headers = new Headers(c.req.raw.headers);
  headers.delete("authorization");
  headers.set("x-gridx-pool", principal.pool);
  headers.set("x-gridx-token-id", principal.tokenId);
  return coordinatorFor(c.env, principal.pool).fetch(new Request(c.req.url, { headers }));
});
