import { ErrorCode } from "../../protocol/index.ts";
import type { ContentfulStatusCode } from "hono/utils/http-status";

const ERROR_STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  validation_failed: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  too_many_requests: 429,
  protocol_version_unsupported: 426,
  unavailable: 503,
  bad_message: 400,
  internal: 500,
};

/**
 * An error the API answers with `{error: {code, message, field?}}` and the code's status.
 *
 * @example
 * throw new AppError("not_found", `no job ${id}`);
 */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
    /** Machine-readable facts about the refusal, such as a quota's limit and usage. */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
  get status(): ContentfulStatusCode {
    return ERROR_STATUS[this.code];
  }
  toJSON() {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}), ...this.details } };
  }
}

export { ErrorCode };

/** What an error says, for a log line: its message, never a stack or a secret it may carry in fields. */
export const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));
