import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { PROTOCOL_VERSION } from "../../../protocol/index.ts";
import { sha256Hex } from "../auth/tokens.ts";
import { getAttempt } from "../db/attempts.ts";
import { recordArtifacts } from "../db/artifacts.ts";
import { createDb } from "../db/client.ts";
import { getWorker } from "../db/workers.ts";
import { settingsOf } from "../settings.ts";
import { ObjectStore } from "../storage/object-store.ts";
import { coordinatorFor } from "../coordinator/stub.ts";
import { TUNNEL_HEADER } from "../coordinator/tunnel-hub.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { ArtifactComplete, ArtifactPrepare, ArtifactsRecorded, ArtifactUploads } from "../schemas.ts";

const MIB = 1024 * 1024;

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

const tags = ["agent"];
const agent = access("agent");

/** Agents dial in here; the socket is handed to the coordinator of the token's pool. */
export const agentRoutes = router()
  .openapi(
    createRoute({
      ...agent,
      tags,
      method: "post",
      path: "/artifacts/prepare",
      summary: "Presigned uploads for a job's outputs",
      description: `${agent.description} Only for an attempt this agent runs.`,
      request: { body: body(ArtifactPrepare) },
      responses: { 200: json(ArtifactUploads, "Where to send each file."), ...errors(400, 401, 403, 409, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      await mustOwnAttempt(c, req.job_id, req.attempt);
      const settings = settingsOf(c.env);
      const total = req.files.reduce((n, f) => n + f.size, 0);
      if (total > settings.MAX_JOB_OUTPUT_MB * MIB) throw new AppError("payload_too_large", `files: a job's outputs are at most ${settings.MAX_JOB_OUTPUT_MB} MiB`, "files");
      const store = new ObjectStore(c.env.BUCKET, settings);
      const uploads = await Promise.all(
        req.files.map(async (f) => {
          const plan = await store.planUpload(await artifactKey(req.job_id, req.attempt, f.name), f.size);
          return { name: f.name, upload: plan.upload, upload_id: plan.uploadId };
        }),
      );
      return c.json({ uploads }, 200);
    },
  )
  .openapi(
    createRoute({
      ...agent,
      tags,
      method: "post",
      path: "/artifacts/complete",
      summary: "Record a job's uploaded outputs",
      description: `${agent.description} Each stored object's size must match the declared one.`,
      request: { body: body(ArtifactComplete) },
      responses: { 200: json(ArtifactsRecorded, "How many artifacts were recorded."), ...errors(400, 401, 403, 409, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const { db } = await mustOwnAttempt(c, req.job_id, req.attempt);
      const store = new ObjectStore(c.env.BUCKET, settingsOf(c.env));
      const now = Date.now();
      const rows = [];
      for (const a of req.artifacts) {
        const key = await artifactKey(req.job_id, req.attempt, a.name);
        const size = await store.complete(key, a.upload_id ?? null, a.parts);
        if (size !== a.size) throw new AppError("conflict", `artifact ${a.name}: ${size ?? 0} bytes stored, ${a.size} declared`);
        rows.push({ jobId: req.job_id, attempt: req.attempt, name: a.name, size: a.size, sha256: a.sha256, key, createdAt: now });
      }
      await recordArtifacts(db, rows);
      return c.json({ recorded: rows.length }, 200);
    },
  )
  .openapi(
    createRoute({
      ...agent,
      tags,
      method: "get",
      path: "/connect",
      summary: "The agents' WebSocket",
      description: `${agent.description} Upgrades to the WebSocket that carries the agent protocol (\`protocol/\`): hello, heartbeats, jobs, logs and results.`,
      request: {
        query: z.object({ protocol: z.string().optional().openapi({ description: `the protocol version the agent speaks (this control plane: ${PROTOCOL_VERSION})` }) }),
      },
      responses: { 101: { description: "Switching to the WebSocket." }, ...errors(400, 401, 403, 426) },
    }),
    async (c) => {
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
        throw new AppError("validation_failed", "this route takes a WebSocket upgrade (Upgrade: websocket)", "Upgrade");
      }
      const asked = c.req.valid("query").protocol;
      if (asked !== undefined && asked !== String(PROTOCOL_VERSION)) {
        throw new AppError("protocol_version_unsupported", `this control plane speaks protocol ${PROTOCOL_VERSION}, the agent speaks ${asked}: upgrade the agent`);
      }
      const principal = c.get("principal");
      if (principal.kind !== "agent") throw new AppError("forbidden", "agent tokens only");
      const headers = new Headers(c.req.raw.headers);
      headers.delete("authorization");
      // Streams are opened by the port and exec routes only, after their checks: never by an agent's own request.
      headers.delete(TUNNEL_HEADER);
      headers.set("x-gridx-pool", principal.pool);
      headers.set("x-gridx-token-id", principal.tokenId);
      return coordinatorFor(c.env, principal.pool).fetch(new Request(c.req.url, { headers }));
    },
  );
