import { AwsClient } from "aws4fetch";
import { TRANSFER_LIMITS, type CompletedPart, type Upload } from "../../../protocol/index.ts";
import { AppError } from "../errors.ts";
import type { Settings } from "../settings.ts";

const MIB = 1024 * 1024;
/** Part URLs handed out at once; a long upload asks for more as it goes. */
const PART_URL_BATCH = 1000;

export interface UploadPlan {
  upload: Upload;
  uploadId: string | null;
  partSize: number | null;
}

/**
 * R2 as gridx uses it: the binding for bookkeeping (multipart create/complete/abort, head,
 * delete) and presigned S3 URLs for the bytes, so bytes never pass through the Worker. Each
 * URL is scoped to one object and one method, and expires.
 */
export class ObjectStore {
  private readonly client: AwsClient;

  constructor(
    private readonly bucket: R2Bucket,
    private readonly settings: Settings,
  ) {
    if (!settings.S3_ENDPOINT || !settings.S3_ACCESS_KEY_ID || !settings.S3_SECRET_ACCESS_KEY) {
      throw new AppError("unavailable", "object storage is not configured: set S3_ENDPOINT, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY");
    }
    this.client = new AwsClient({ accessKeyId: settings.S3_ACCESS_KEY_ID, secretAccessKey: settings.S3_SECRET_ACCESS_KEY, service: "s3", region: "auto" });
  }

  /** A presigned URL for one method on one object. */
  async presign(method: "GET" | "PUT", key: string, opts: { ttlS?: number; query?: Record<string, string> } = {}) {
    const ttl = Math.min(opts.ttlS ?? this.settings.URL_TTL_S, 3600);
    const url = new URL(`${this.settings.S3_ENDPOINT.replace(/\/$/, "")}/${this.settings.S3_BUCKET}/${key}`);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    url.searchParams.set("X-Amz-Expires", String(ttl));
    const signed = await this.client.sign(new Request(url, { method }), { aws: { signQuery: true } });
    return { url: signed.url, expiresAt: new Date(Date.now() + ttl * 1000).toISOString() };
  }

  /** How a client should send `size` bytes to `key`: one PUT, or a multipart upload. */
  async planUpload(key: string, size: number): Promise<UploadPlan> {
    if (size <= this.settings.MULTIPART_THRESHOLD_MB * MIB) {
      const put = await this.presign("PUT", key);
      return { upload: { method: "PUT", url: put.url, expires_at: put.expiresAt }, uploadId: null, partSize: null };
    }
    const partSize = Math.max(this.settings.PART_SIZE_MB * MIB, Math.ceil(size / TRANSFER_LIMITS.max_parts), TRANSFER_LIMITS.min_part_bytes);
    const partCount = Math.ceil(size / partSize);
    const multipart = await this.bucket.createMultipartUpload(key);
    const numbers = Array.from({ length: Math.min(partCount, PART_URL_BATCH) }, (_, i) => i + 1);
    const { parts, expiresAt } = await this.partUrls(key, multipart.uploadId, numbers);
    return { upload: { multipart: { part_size: partSize, part_count: partCount, parts }, expires_at: expiresAt }, uploadId: multipart.uploadId, partSize };
  }

  async partUrls(key: string, uploadId: string, partNumbers: number[]) {
    let expiresAt = "";
    const parts = await Promise.all(
      partNumbers.map(async (n) => {
        const p = await this.presign("PUT", key, { query: { partNumber: String(n), uploadId } });
        expiresAt = p.expiresAt;
        return { part_number: n, url: p.url };
      }),
    );
    return { parts, expiresAt };
  }

  /** Finishes an upload and returns the stored size, or null when nothing arrived. */
  async complete(key: string, uploadId: string | null, parts: CompletedPart[] | undefined): Promise<number | null> {
    if (uploadId) {
      if (!parts?.length) throw new AppError("validation_failed", "parts: a multipart upload completes with its parts' etags", "parts");
      const sorted = [...parts].sort((a, b) => a.part_number - b.part_number);
      try {
        await this.bucket.resumeMultipartUpload(key, uploadId).complete(sorted.map((p) => ({ partNumber: p.part_number, etag: p.etag.replace(/"/g, "") })));
      } catch (err) {
        throw new AppError("validation_failed", `parts: the upload could not be completed: ${(err as Error).message}`, "parts");
      }
    }
    const head = await this.bucket.head(key);
    return head ? head.size : null;
  }

  async abort(key: string, uploadId: string | null): Promise<void> {
    if (uploadId) await this.bucket.resumeMultipartUpload(key, uploadId).abort().catch(() => undefined);
    await this.bucket.delete(key);
  }

  delete(key: string): Promise<void> {
    return this.bucket.delete(key);
  }
}
