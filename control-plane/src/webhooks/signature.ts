import type { SecretVault } from "../secrets/vault.ts";

const hex = (bytes: ArrayBuffer) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** A new signing secret: `whsec_` and 32 random bytes, base64url. */
export function newSigningSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return `whsec_${btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

/**
 * The `gridx-signature` header's value: `v1=` and the hex HMAC-SHA256, keyed with the whole
 * secret (`whsec_…` as shown), of `<timestamp>.<body>`. Signing the timestamp with the body lets
 * a receiver refuse replays of old deliveries.
 *
 * @example
 * await signatureHeader("whsec_…", 1767225600, '{"type":"job.completed",…}') // "v1=5d41…"
 */
export async function signatureHeader(secret: string, timestampS: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return `v1=${hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${timestampS}.${body}`)))}`;
}

/**
 * Signing secrets are sealed by the project-secrets vault (they must be read back to sign),
 * under a scope no project can have (project names start with a letter or digit), so a
 * project secret's sealed value never opens as a webhook's.
 */
const SCOPE = ":webhooks";

export const sealSigningSecret = (vault: SecretVault, webhookId: string, secret: string) => vault.seal(SCOPE, webhookId, secret);
export const openSigningSecret = (vault: SecretVault, webhookId: string, sealed: string) => vault.open(SCOPE, webhookId, sealed);
