import { Hono } from "hono";
import { z } from "zod";
import { DatasetCreate, PartUrlsRequest, UploadComplete } from "../../../protocol/index.ts";
import { createDb } from "../db/client.ts";
import { datasetView, deleteDataset, getDataset, insertDataset, listDatasets, markReady } from "../db/datasets.ts";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors.ts";
import { newId } from "../ids.ts";
import { requireAuth } from "../middleware/auth.ts";
import { jsonBody, parseWith } from "../middleware/validate.ts";
import { settingsOf } from "../settings.ts";
import { ObjectStore } from "../storage/object-store.ts";

const MIB = 1024 * 1024;
const ListQuery = z.object({ limit: z.coerce.number().int().min(1).max(200).default(50), cursor: z.string().max(64).optional() });
const DownloadQuery = z.object({ ttl_s: z.coerce.number().int().min(1).max(3600).optional() });

const datasetKey = (id: string) => `datasets/${id}`;

async function mustGetDataset(db: ReturnType<typeof createDb>, id: string) {
  const d = await getDataset(db, id);
  if (!d) throw new AppError("not_found", `no dataset ${id}`);
  return d;
}

export const datasetRoutes = new Hono<AppEnv>()
  .use(requireAuth("admin", "user"))
  .post("/", async (c) => {
    const body = await jsonBody(c, DatasetCreate);
    const settings = settingsOf(c.env);
    if (body.size > settings.MAX_DATASET_MB * MIB) throw new AppError("payload_too_large", `size: a dataset is at most ${settings.MAX_DATASET_MB} MiB`, "size");
    const store = new ObjectStore(c.env.BUCKET, settings);
    const id = newId("ds");
    const plan = await store.planUpload(datasetKey(id), body.size);
    const db = createDb(c.env.DB);
    await insertDataset(db, {
      id,
      name: body.name,
      size: body.size,
      sha256: body.sha256 ?? null,
      status: "uploading",
      key: datasetKey(id),
      uploadId: plan.uploadId,
      partSize: plan.partSize,
      createdBy: c.get("principal").tokenId,
      createdAt: Date.now(),
    });
    return c.json({ ...datasetView((await getDataset(db, id))!), upload: plan.upload }, 201);
  })
  .post("/:id/upload-urls", async (c) => {
    const body = await jsonBody(c, PartUrlsRequest);
    const db = createDb(c.env.DB);
    const d = await mustGetDataset(db, c.req.param("id"));
    if (d.status !== "uploading" || !d.uploadId || !d.partSize) throw new AppError("conflict", `dataset ${d.id} has no multipart upload open`);
    const partCount = Math.ceil(d.size / d.partSize);
    const bad = body.part_numbers.find((n) => n > partCount);
    if (bad) throw new AppError("validation_failed", `part_numbers: part ${bad} is past the last part (${partCount})`, "part_numbers");
    const { parts, expiresAt } = await new ObjectStore(c.env.BUCKET, settingsOf(c.env)).partUrls(d.key, d.uploadId, body.part_numbers);
    return c.json({ parts, expires_at: expiresAt });
  })
  .post("/:id/complete", async (c) => {
    const body = await jsonBody(c, UploadComplete);
    const db = createDb(c.env.DB);
    const d = await mustGetDataset(db, c.req.param("id"));
    if (d.status === "ready") return c.json(datasetView(d));
    const size = await new ObjectStore(c.env.BUCKET, settingsOf(c.env)).complete(d.key, d.uploadId, body.parts);
    if (size === null) throw new AppError("conflict", `dataset ${d.id}: nothing was uploaded yet`);
    if (size !== d.size) throw new AppError("conflict", `dataset ${d.id}: ${size} bytes arrived, ${d.size} were declared; upload it again`);
    await markReady(db, d.id, Date.now());
    return c.json(datasetView((await getDataset(db, d.id))!));
  })
  .get("/", async (c) => {
    const q = parseWith(ListQuery, c.req.query());
    const page = await listDatasets(createDb(c.env.DB), q.limit, q.cursor);
    return c.json({ datasets: page.datasets.map(datasetView), next_cursor: page.nextCursor });
  })
  .get("/:id", async (c) => c.json(datasetView(await mustGetDataset(createDb(c.env.DB), c.req.param("id")))))
  .get("/:id/download", async (c) => {
    const q = parseWith(DownloadQuery, c.req.query());
    const d = await mustGetDataset(createDb(c.env.DB), c.req.param("id"));
    if (d.status !== "ready") throw new AppError("conflict", `dataset ${d.id} is still uploading`);
    const { url } = await new ObjectStore(c.env.BUCKET, settingsOf(c.env)).presign("GET", d.key, { ttlS: q.ttl_s });
    return c.redirect(url, 302);
  })
  .delete("/:id", async (c) => {
    const db = createDb(c.env.DB);
    const d = await mustGetDataset(db, c.req.param("id"));
    await new ObjectStore(c.env.BUCKET, settingsOf(c.env)).abort(d.key, d.uploadId);
    await deleteDataset(db, d.id);
    return c.body(null, 204);
  });
