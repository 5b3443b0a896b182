/** Error codes shared by the HTTP API and the wire protocol. */
export const ErrorCode = {
  validationFailed: "validation_failed",
  unauthorized: "unauthorized",
  forbidden: "forbidden",
  notFound: "not_found",
  conflict: "conflict",
  payloadTooLarge: "payload_too_large",
  /** A rate limit or a quota: the answer says which, and `Retry-After` when waiting helps. */
  tooManyRequests: "too_many_requests",
  protocolVersion: "protocol_version_unsupported",
  unavailable: "unavailable",
  badMessage: "bad_message",
  internal: "internal",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
