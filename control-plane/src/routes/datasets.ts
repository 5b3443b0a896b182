import { createRoute, z } from "@hono/zod-openapi";
import { createDb } from "../db/client.ts";
import { ProjectName } from "../../../protocol/index.ts";
import { readableProjects } from "../auth/access.ts";
import { datasetView, deleteDataset, getDataset, insertDataset, listDatasets, markReady } from "../db/datasets.ts";
import { usageOf } from "../db/projects.ts";
import { datasetRefusal } from "../quotas.ts";
import { mustGetDataset, mustGetProject } from "./guards.ts";
import { AppError } from "../errors.ts";
import { newId } from "../ids.ts";
import { access, body, errors, json, router } from "../openapi.ts";
import { Dataset, DatasetCreate, DatasetCreated, DatasetPage, PartUrls, PartUrlsRequest, UploadComplete } from "../schemas.ts";
import { settingsOf } from "../settings.ts";
import { ObjectStore } from "../storage/object-store.ts";

const MIB = 1024 * 1024;
const ListQuery = z.object({
  project: ProjectName.optional().openapi({ description: "only this project's datasets; every project the caller reads, if absent" }),
  limit: z.coerce.number().int().min(1).max(200).default(50).openapi({ type: "integer" }),
  cursor: z.string().max(64).optional().openapi({ description: "`next_cursor` of the previous page" }),
});
const DownloadQuery = z.object({
  ttl_s: z.coerce.number().int().min(1).max(3600).optional().openapi({ type: "integer", description: "lifetime of the presigned URL, in seconds" }),
});
const DatasetParams = z.object({ id: z.string().max(64).openapi({ example: "ds_01jd2x7k8m9n0p1q2r3s4t5v6w" }) });

const datasetKey = (id: string) => `datasets/${id}`;


const tags = ["datasets"];
const user = access("admin", "user");

export const datasetRoutes = router()
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/",
      summary: "Start a dataset upload",
      description: `${user.description} Answers with presigned URLs: one PUT up to the multipart threshold, else the parts of a multipart upload. The dataset is \`ready\` once completed.`,
      request: { body: body(DatasetCreate) },
      responses: { 201: json(DatasetCreated, "The dataset, uploading, with where to send the bytes."), ...errors(400, 401, 403, 404, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const settings = settingsOf(c.env);
      const db = createDb(c.env.DB);
      const { project } = await mustGetProject(db, c.get("principal"), req.project, "member", "project");
      if (req.size > settings.MAX_DATASET_MB * MIB) throw new AppError("payload_too_large", `size: a dataset is at most ${settings.MAX_DATASET_MB} MiB`, "size");
      const hit = datasetRefusal(project.quotas, (await usageOf(db, [req.project])).get(req.project)!, req.size);
      if (hit) throw new AppError("payload_too_large", `size: ${hit.message}`, "size", { quota: hit.quota, limit: hit.limit, usage: hit.usage });
      const store = new ObjectStore(c.env.BUCKET, settings);
      const id = newId("ds");
      const plan = await store.planUpload(datasetKey(id), req.size);
      await insertDataset(db, {
        id,
        project: req.project,
        name: req.name,
        size: req.size,
        sha256: req.sha256 ?? null,
        status: "uploading",
        key: datasetKey(id),
        uploadId: plan.uploadId,
        partSize: plan.partSize,
        createdBy: c.get("principal").tokenId,
        createdAt: Date.now(),
      });
      return c.json({ ...datasetView((await getDataset(db, id))!), upload: plan.upload }, 201);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/{id}/upload-urls",
      summary: "Fresh presigned URLs for parts of a multipart upload",
      request: { params: DatasetParams, body: body(PartUrlsRequest) },
      responses: { 200: json(PartUrls, "One presigned PUT per part asked for."), ...errors(400, 401, 403, 404, 409, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const db = createDb(c.env.DB);
      const d = await mustGetDataset(db, c.get("principal"), c.req.valid("param").id, "member");
      if (d.status !== "uploading" || !d.uploadId || !d.partSize) throw new AppError("conflict", `dataset ${d.id} has no multipart upload open`);
      const partCount = Math.ceil(d.size / d.partSize);
      const bad = req.part_numbers.find((n) => n > partCount);
      if (bad) throw new AppError("validation_failed", `part_numbers: part ${bad} is past the last part (${partCount})`, "part_numbers");
      const { parts, expiresAt } = await new ObjectStore(c.env.BUCKET, settingsOf(c.env)).partUrls(d.key, d.uploadId, req.part_numbers);
      return c.json({ parts, expires_at: expiresAt }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "post",
      path: "/{id}/complete",
      summary: "Finish an upload",
      description: `${user.description} Checks the stored size against the declared one; the dataset is \`ready\` only then. Completing a ready dataset is a no-op.`,
      request: { params: DatasetParams, body: body(UploadComplete) },
      responses: { 200: json(Dataset, "The dataset, ready."), ...errors(400, 401, 403, 404, 409, 413) },
    }),
    async (c) => {
      const req = c.req.valid("json");
      const db = createDb(c.env.DB);
      const d = await mustGetDataset(db, c.get("principal"), c.req.valid("param").id, "member");
      if (d.status === "ready") return c.json(datasetView(d), 200);
      const size = await new ObjectStore(c.env.BUCKET, settingsOf(c.env)).complete(d.key, d.uploadId, req.parts);
      if (size === null) throw new AppError("conflict", `dataset ${d.id}: nothing was uploaded yet`);
      if (size !== d.size) throw new AppError("conflict", `dataset ${d.id}: ${size} bytes arrived, ${d.size} were declared; upload it again`);
      await markReady(db, d.id, Date.now());
      return c.json(datasetView((await getDataset(db, d.id))!), 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/",
      summary: "List datasets, newest first",
      request: { query: ListQuery },
      responses: { 200: json(DatasetPage, "A page of datasets; `next_cursor` is null on the last page."), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const page = await listDatasets(createDb(c.env.DB), { projects: readableProjects(c.get("principal")), project: q.project, limit: q.limit, cursor: q.cursor });
      return c.json({ datasets: page.datasets.map(datasetView), next_cursor: page.nextCursor }, 200);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}",
      summary: "A dataset",
      request: { params: DatasetParams },
      responses: { 200: json(Dataset, "The dataset."), ...errors(400, 401, 403, 404) },
    }),
    async (c) => c.json(datasetView(await mustGetDataset(createDb(c.env.DB), c.get("principal"), c.req.valid("param").id)), 200),
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "get",
      path: "/{id}/download",
      summary: "Download a dataset",
      request: { params: DatasetParams, query: DownloadQuery },
      responses: {
        302: { description: "A redirect to a presigned GET of the dataset's bytes (ranges work).", headers: z.object({ location: z.string() }) },
        ...errors(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const d = await mustGetDataset(createDb(c.env.DB), c.get("principal"), c.req.valid("param").id);
      if (d.status !== "ready") throw new AppError("conflict", `dataset ${d.id} is still uploading`);
      const { url } = await new ObjectStore(c.env.BUCKET, settingsOf(c.env)).presign("GET", d.key, { ttlS: q.ttl_s });
      return c.redirect(url, 302);
    },
  )
  .openapi(
    createRoute({
      ...user,
      tags,
      method: "delete",
      path: "/{id}",
      summary: "Delete a dataset",
      description: `${user.description} Aborts an open upload and removes the bytes.`,
      request: { params: DatasetParams },
      responses: { 204: { description: "Deleted." }, ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const db = createDb(c.env.DB);
      const d = await mustGetDataset(db, c.get("principal"), c.req.valid("param").id, "member");
      await new ObjectStore(c.env.BUCKET, settingsOf(c.env)).abort(d.key, d.uploadId);
      await deleteDataset(db, d.id);
      return c.body(null, 204);
    },
  );
