import { readFileSync } from "node:fs";
import type { Agent as HttpAgent } from "node:http";
import { rootCertificates } from "node:tls";
import { HttpsProxyAgent } from "https-proxy-agent";

/**
 * The proxy to use for a URL, as curl and most tools read it: HTTPS_PROXY for https/wss,
 * HTTP_PROXY for http/ws (either case), unless NO_PROXY names the host (`*`, exact host,
 * `.suffix` or `suffix`, optional `:port`).
 */
export function proxyFor(target: string, env: NodeJS.ProcessEnv): string | null {
  const url = new URL(target);
  const secure = url.protocol === "https:" || url.protocol === "wss:";
  const proxy = secure ? (env.HTTPS_PROXY ?? env.https_proxy ?? env.HTTP_PROXY ?? env.http_proxy) : (env.HTTP_PROXY ?? env.http_proxy);
  if (!proxy) return null;
  const noProxy = (env.NO_PROXY ?? env.no_proxy ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  const host = url.hostname.toLowerCase();
  const port = url.port || (secure ? "443" : "80");
  for (const entry of noProxy) {
    if (entry === "*") return null;
    const [name, entryPort] = entry.split(":");
    if (entryPort && entryPort !== port) continue;
    const bare = name!.replace(/^\*?\./, "");
    if (host === bare || host.endsWith("." + bare)) return null;
  }
  return proxy;
}

export interface NetworkOptions {
  /** An http.Agent that tunnels through the proxy, when one applies. */
  agent?: HttpAgent;
  /** Trusted CAs: the system's plus the extra file's. */
  ca?: string[];
}

/** What outbound connections to `target` need: a proxy tunnel and extra CA certificates. */
export function networkOptions(target: string, env: NodeJS.ProcessEnv, caFile?: string): NetworkOptions {
  const ca = caFile ? [...rootCertificates, readFileSync(caFile, "utf8")] : undefined;
  const proxy = proxyFor(target, env);
  return {
    ...(ca ? { ca } : {}),
    ...(proxy ? { agent: new HttpsProxyAgent(proxy, ca ? { ca } : {}) } : {}),
  };
}
