/**
 * The wire protocol's version, carried in every envelope. Bump it on any change that an
 * older peer could misread; the coordinator refuses agents that speak another version.
 */
export const PROTOCOL_VERSION = 1 as const;
export type ProtocolVersion = typeof PROTOCOL_VERSION;
