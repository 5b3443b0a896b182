import { portPath } from "../../../protocol/index.ts";

/**
 * Per-port host names (`PORTS_DOMAIN`): `p8888-j-0abc….ports.example.com` is port 8888 of job
 * `j_0abc…`, its own origin, so a page a job serves cannot script the dashboard or the API of
 * the control plane's origin (docs/security.md). Host names cannot hold `_`, so the job id's
 * is a `-`.
 */
const HOST_LABEL = /^p([1-9][0-9]{0,4})-j-([0-9a-z]{1,60})$/;

/** Marks a request rewritten from a port host; a client's own header of that name is dropped first. */
export const PORT_HOST_HEADER = "x-gridx-port-host";

export function portHostName(jobId: string, port: number, domain: string): string {
  return `p${port}-${jobId.replace("_", "-")}.${domain}`;
}

/** The job and port a host name names under `domain`, or null when it is not a port host. */
export function parsePortHost(host: string, domain: string): { jobId: string; port: number } | null {
  const name = host.toLowerCase().replace(/:\d+$/, "");
  const suffix = `.${domain.toLowerCase()}`;
  if (!name.endsWith(suffix)) return null;
  const m = HOST_LABEL.exec(name.slice(0, -suffix.length));
  if (!m || Number(m[1]) > 65535) return null;
  return { jobId: `j_${m[2]}`, port: Number(m[1]) };
}

/**
 * A request to a port host as the port route reads it: its path under the port's path (kept
 * as it is when it is there already, as a server told its base URL links to it), marked with
 * PORT_HOST_HEADER. Any other request comes back with a client's PORT_HOST_HEADER removed.
 */
export function fromPortHost(request: Request, domain: string | undefined): Request {
  const url = new URL(request.url);
  const target = domain ? parsePortHost(url.host, domain) : null;
  if (!target && !request.headers.has(PORT_HOST_HEADER)) return request;
  const headers = new Headers(request.headers);
  headers.delete(PORT_HOST_HEADER);
  if (target) {
    const prefix = portPath(target.jobId, target.port);
    if (!url.pathname.startsWith(prefix)) url.pathname = prefix + url.pathname.slice(1);
    headers.set(PORT_HOST_HEADER, "1");
  }
  return new Request(url, new Request(request, { headers }));
}
