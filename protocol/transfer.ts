import { ProjectName } from "./repo.ts";
import { z } from "zod";

/** Bounds on stored objects; the control plane's settings may lower them. */
export const TRANSFER_LIMITS = {
  /** S3's floor for every part but the last. */
  min_part_bytes: 5 * 1024 * 1024,
  max_parts: 10_000,
  name_chars: 200,
  artifacts_per_job: 1000,
} as const;

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, "a lowercase hex SHA-256");
export const ObjectName = z
  .string()
  .min(1)
  .max(TRANSFER_LIMITS.name_chars)
  .regex(/^[A-Za-z0-9._\-/ ]+$/, "letters, digits, spaces, '.', '_', '-' and '/'")
  .refine((n) => !n.startsWith("/") && !n.split("/").some((p) => p === ".." || p === "." || p === ""), "a relative name without '.', '..' or empty parts");

export const DatasetCreate = z
  .object({
    name: ObjectName,
    size: z.number().int().min(0),
    sha256: Sha256.optional(),
    /** The project that owns it: only that project's jobs mount it. */
    project: ProjectName.default("default"),
  })
  .strict();
export type DatasetCreate = z.infer<typeof DatasetCreate>;

export const PartUrl = z.object({ part_number: z.number().int().min(1), url: z.string() });
export type PartUrl = z.infer<typeof PartUrl>;

/** How to send the bytes: one presigned PUT, or presigned parts of a multipart upload. */
export const Upload = z.union([
  z.object({ method: z.literal("PUT"), url: z.string(), expires_at: z.string() }),
  z.object({
    multipart: z.object({ part_size: z.number().int(), part_count: z.number().int(), parts: z.array(PartUrl) }),
    expires_at: z.string(),
  }),
]);
export type Upload = z.infer<typeof Upload>;

export const CompletedPart = z.object({ part_number: z.number().int().min(1).max(TRANSFER_LIMITS.max_parts), etag: z.string().min(1).max(512) });
export type CompletedPart = z.infer<typeof CompletedPart>;

export const UploadComplete = z.object({ parts: z.array(CompletedPart).max(TRANSFER_LIMITS.max_parts).optional() }).strict();
export const PartUrlsRequest = z.object({ part_numbers: z.array(z.number().int().min(1).max(TRANSFER_LIMITS.max_parts)).min(1).max(1000) }).strict();

/** Agent → control plane: the files a job left in /work/output. */
export const ArtifactPrepare = z
  .object({
    job_id: z.string().max(64),
    attempt: z.number().int().min(1),
    files: z.array(z.object({ name: ObjectName, size: z.number().int().min(0) })).max(TRANSFER_LIMITS.artifacts_per_job),
  })
  .strict();
export type ArtifactPrepare = z.infer<typeof ArtifactPrepare>;

export const ArtifactUpload = z.object({ name: z.string(), upload: Upload });
export type ArtifactUpload = z.infer<typeof ArtifactUpload>;

export const ArtifactComplete = z
  .object({
    job_id: z.string().max(64),
    attempt: z.number().int().min(1),
    artifacts: z
      .array(z.object({ name: ObjectName, size: z.number().int().min(0), sha256: Sha256, parts: z.array(CompletedPart).optional() }))
      .max(TRANSFER_LIMITS.artifacts_per_job),
  })
  .strict();
export type ArtifactComplete = z.infer<typeof ArtifactComplete>;
