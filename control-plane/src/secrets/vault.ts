import { AppError } from "../errors.ts";

/** The largest secret value, in characters (a private key fits easily). */
export const MAX_SECRET_CHARS = 16384;

const b64url = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const fromB64url = (text: string) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

/**
 * Encrypts project secrets at rest with AES-256-GCM under the Worker secret `SECRETS_KEY`
 * (32 random bytes, base64). The project and name are the associated data, so a sealed value
 * copied to another name does not open.
 */
export class SecretVault {
  private constructor(private readonly key: CryptoKey) {}

  /** A vault, or an `unavailable` error naming the setting when SECRETS_KEY is missing or malformed. */
  static async fromKey(rawKey: string | undefined): Promise<SecretVault> {
    let bytes: Uint8Array | null = null;
    try {
      bytes = rawKey ? Uint8Array.from(atob(rawKey.trim()), (c) => c.charCodeAt(0)) : null;
    } catch {
      bytes = null;
    }
    if (!bytes || bytes.length !== 32) {
      throw new AppError("unavailable", "project secrets are not configured: set the Worker secret SECRETS_KEY to 32 random bytes, base64 (openssl rand -base64 32)");
    }
    return new SecretVault(await crypto.subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt", "decrypt"]));
  }

  async seal(project: string, name: string, plaintext: string): Promise<string> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad(project, name) }, this.key, new TextEncoder().encode(plaintext));
    return `v1.${b64url(iv)}.${b64url(new Uint8Array(ct))}`;
  }

  async open(project: string, name: string, sealed: string): Promise<string> {
    const [version, iv, ct] = sealed.split(".");
    if (version !== "v1" || !iv || !ct) throw new Error(`secret ${project}/${name} is not in a known format`);
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromB64url(iv), additionalData: aad(project, name) }, this.key, fromB64url(ct));
    return new TextDecoder().decode(plain);
  }
}

const aad = (project: string, name: string) => new TextEncoder().encode(`gridx-secret:${project}/${name}`);
