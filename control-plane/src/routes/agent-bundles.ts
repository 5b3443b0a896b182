import { createRoute, z } from "@hono/zod-openapi";
import { AgentVersion } from "../../../protocol/index.ts";
import { audit } from "../audit.ts";
import { actorName } from "../auth/principal.ts";
import { createDb } from "../db/client.ts";
import { bundleView, deleteBundle, getBundle, insertBundle, listBundles, markBundleReady } from "../db/upgrades.ts";
import { AppError } from "../errors.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { AgentBundle, AgentBundleCreate, AgentBundleCreated, AgentBundleList } from "../schemas.ts";
import { settingsOf } from "../settings.ts";
import { ObjectStore } from "../storage/object-store.ts";

const MIB = 1024 * 1024;
const bundleKey = (version: string) => `agent-bundles/${version}/gridx-agent.mjs`;
const BundleParams = z.object({ version: AgentVersion.clone().openapi({ param: { name: "version", in: "path" }, example: "0.2.0" }) });

/** Hex SHA-256 of an object as R2 holds it, read back by the Worker: the checksum agents verify is the control plane's own, not the uploader's word. */
async function storedSha256(bucket: R2Bucket, key: string): Promise<string | null> {
  const object = await bucket.get(key);
  if (!object) return null;
  const digest = new crypto.DigestStream("SHA-256");
  await object.body.pipeTo(digest);
  return [...new Uint8Array(await digest.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const tags = ["workers"];
const admin = access("admin");

/** Agent bundles published for pool upgrades (docs/upgrades.md): uploaded once through presigned URLs, checked, then ordered to pools. */
export const agentBundleRoutes = router()
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "post",
      path: "/",
      summary: "Start publishing an agent bundle (admin)",
      description: `${admin.description} Answers with a presigned PUT for the bundle file (gridx-agent.mjs), always one (a bundle is at most AGENT_BUNDLE_MAX_MB); completing the upload checks its size and SHA-256. An unfinished upload of the same version is replaced.`,
      request: { body: body(AgentBundleCreate) },
      responses: { 201: json(AgentBundleCreated, "The bundle, uploading, with where to send the bytes."), ...errors(400, 401, 403, 409, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const settings = settingsOf(c.env);
      if (req.size > settings.AGENT_BUNDLE_MAX_MB * MIB) throw new AppError("payload_too_large", `size: an agent bundle is at most ${settings.AGENT_BUNDLE_MAX_MB} MiB (AGENT_BUNDLE_MAX_MB)`, "size");
      const db = createDb(c.env.DB);
      const existing = await getBundle(db, req.version);
      if (existing?.status === "ready") throw new AppError("conflict", `version: bundle ${req.version} is published already; publish another version`, "version");
      const put = await new ObjectStore(c.env.BUCKET, settings).presign("PUT", bundleKey(req.version));
      if (existing) await deleteBundle(db, req.version);
      await insertBundle(db, {
        version: req.version,
        sha256: req.sha256,
        size: req.size,
        status: "uploading",
        key: bundleKey(req.version),
        createdBy: actorName(c.get("principal")),
        createdAt: Date.now(),
      });
      return c.json({ ...bundleView((await getBundle(db, req.version))!), upload: { method: "PUT" as const, url: put.url, expires_at: put.expiresAt } }, 201);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "post",
      path: "/{version}/complete",
      summary: "Finish publishing an agent bundle (admin)",
      description: `${admin.description} The stored bytes must have the declared size and SHA-256; the bundle is \`ready\` (pools can be upgraded to it) only then.`,
      request: { params: BundleParams },
      responses: { 200: json(AgentBundle, "The bundle, ready."), ...errors(400, 401, 403, 404, 409, 413) },
    }),
    async (c) => {
      const { version } = c.req.valid("param");
      const db = createDb(c.env.DB);
      const b = await getBundle(db, version);
      if (!b) throw new AppError("not_found", `no agent bundle ${version}`);
      if (b.status === "ready") return c.json(bundleView(b), 200);
      const size = (await c.env.BUCKET.head(b.key))?.size ?? null;
      if (size === null) throw new AppError("conflict", `bundle ${version}: nothing was uploaded yet`);
      if (size !== b.size) throw new AppError("conflict", `bundle ${version}: ${size} bytes arrived, ${b.size} were declared; publish it again`);
      const sha256 = await storedSha256(c.env.BUCKET, b.key);
      if (sha256 !== b.sha256) {
        await c.env.BUCKET.delete(b.key);
        await deleteBundle(db, version);
        throw new AppError("conflict", `bundle ${version}: the bytes stored have SHA-256 ${sha256}, ${b.sha256} was declared; publish it again`);
      }
      await markBundleReady(db, version, Date.now());
      await audit(c, "agent_bundle.publish", { target: version, detail: { sha256: b.sha256, size: b.size } });
      return c.json(bundleView((await getBundle(db, version))!), 200);
    },
  )
  .openapi(
    createRoute({
      ...admin,
      tags,
      method: "get",
      path: "/",
      summary: "Published agent bundles (admin), newest first",
      responses: { 200: json(AgentBundleList, "Every bundle, with its SHA-256 and size; `uploading` ones are not yet usable."), ...errors(401, 403) },
    }),
    async (c) => c.json({ bundles: (await listBundles(createDb(c.env.DB))).map(bundleView) }, 200),
  );
