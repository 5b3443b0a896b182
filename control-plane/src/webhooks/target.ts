/**
 * Which URLs a webhook may be sent to (SSRF safety). Pure: the URL and the operator's allowed
 * classes in, a verdict out. The host is judged as written: a name is not resolved, so this
 * refuses the spellings of internal addresses (every IPv4 form, IPv6 with IPv4 inside, local
 * names), and relies on the platform for names that resolve inward (Workers' fetch reaches only
 * the public Internet; `wrangler dev` is the operator's own machine).
 */

/** Address classes an operator may open in `WEBHOOK_ALLOW_TARGETS`; any other non-public address is never a target. */
export const TARGET_CLASSES = ["loopback", "private", "link-local"] as const;
export type TargetClass = (typeof TARGET_CLASSES)[number];

type HostClass = TargetClass | "public" | "reserved";

export type TargetVerdict = { ok: true; url: URL } | { ok: false; reason: string };

/** The longest webhook URL accepted. */
export const MAX_URL_CHARS = 2048;

/**
 * Whether `raw` may be a webhook's target: http(s) only, no credentials in it, a host that is
 * public or in an allowed class, and https unless the host is an allowed loopback or private one.
 *
 * @example
 * checkTarget("http://127.0.0.1:9000/hook", new Set(["loopback"])) // { ok: true, url }
 */
export function checkTarget(raw: string, allowed: ReadonlySet<TargetClass>): TargetVerdict {
  if (raw.length > MAX_URL_CHARS) return refuse(`is longer than ${MAX_URL_CHARS} characters`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return refuse("is not a URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return refuse(`must be https (not ${url.protocol.slice(0, -1)})`);
  if (url.username || url.password) return refuse("must not carry a user name or password");
  const cls = hostClass(url.hostname);
  if (cls === "reserved") return refuse(`${url.hostname} is an unspecified, multicast or reserved address`);
  if (cls !== "public" && !allowed.has(cls)) {
    return refuse(`${url.hostname} is a ${cls} address; the operator allows such targets in WEBHOOK_ALLOW_TARGETS`);
  }
  if (url.protocol === "http:" && cls !== "loopback" && cls !== "private") return refuse("must be https (plain http only to an allowed loopback or private target)");
  return { ok: true, url };
}

const refuse = (why: string): TargetVerdict => ({ ok: false, reason: `url ${why}` });

/** Names that only mean something on a local network. */
const LOCAL_SUFFIXES = [".local", ".internal", ".lan", ".home.arpa", ".intranet"];

export function hostClass(hostname: string): HostClass {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (host.startsWith("[") && host.endsWith("]")) {
    const v6 = parseIPv6(host.slice(1, -1));
    return v6 ? ipv6Class(v6) : "reserved";
  }
  const v4 = parseIPv4(host);
  if (v4 !== null) return ipv4Class(v4);
  if (host === "localhost" || host.endsWith(".localhost")) return "loopback";
  // A name without a dot resolves through the local search domains.
  if (!host.includes(".") || LOCAL_SUFFIXES.some((s) => host.endsWith(s))) return "private";
  return "public";
}

/**
 * An IPv4 address in any spelling a URL parser or resolver accepts (1 to 4 parts, each
 * decimal, octal with a leading 0, or hex with 0x; the last part fills the remaining bytes),
 * as a 32-bit number; null for anything else.
 */
export function parseIPv4(host: string): number | null {
  const parts = host.split(".");
  if (parts.length > 4) return null;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0x[0-9a-f]*$/i.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]+$/.test(p)) n = parseInt(p.slice(1), 8);
    else if (/^(0|[1-9][0-9]*)$/.test(p)) n = Number(p);
    else return null;
    nums.push(n);
  }
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 256 ** (4 - nums.length)) return null;
  return nums.reduce((acc, n, i) => acc + n * 256 ** (3 - i), 0) + last;
}

const inV4 = (ip: number, base: string, bits: number) => {
  const net = parseIPv4(base)!;
  const size = 2 ** (32 - bits);
  return Math.floor(ip / size) === Math.floor(net / size);
};

function ipv4Class(ip: number): HostClass {
  if (inV4(ip, "127.0.0.0", 8)) return "loopback";
  if (inV4(ip, "10.0.0.0", 8) || inV4(ip, "172.16.0.0", 12) || inV4(ip, "192.168.0.0", 16) || inV4(ip, "100.64.0.0", 10)) return "private";
  if (inV4(ip, "169.254.0.0", 16)) return "link-local";
  // "This network" (0.0.0.0 reaches the local host), multicast, and the reserved and broadcast block.
  if (inV4(ip, "0.0.0.0", 8) || inV4(ip, "224.0.0.0", 4) || inV4(ip, "240.0.0.0", 4)) return "reserved";
  return "public";
}

/** Eight 16-bit groups, or null when the text is not an IPv6 address. */
export function parseIPv6(text: string): number[] | null {
  let s = text.replace(/%.*$/, "");
  // A dotted IPv4 tail (::ffff:127.0.0.1) is two groups.
  const tail = /:(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (tail) {
    const v4 = /^\d+(\.\d+){3}$/.test(tail[1]!) && tail[1]!.split(".").every((o) => Number(o) <= 255) ? parseIPv4(tail[1]!) : null;
    if (v4 === null) return null;
    s = `${s.slice(0, tail.index)}:${Math.floor(v4 / 65536).toString(16)}:${(v4 % 65536).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const fill = 8 - head.length - rest.length;
  if ((halves.length === 2 && fill < 1) || (halves.length === 1 && fill !== 0)) return null;
  const all = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill("0"), ...rest];
  if (!all.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return null;
  return all.map((g) => parseInt(g, 16));
}

function ipv6Class(g: number[]): HostClass {
  const zeroUntil = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (zeroUntil(7) && g[7] === 1) return "loopback";
  if (zeroUntil(8)) return "reserved";
  // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) are judged as the IPv4 address.
  const embedded = g[6]! * 65536 + g[7]!;
  if ((zeroUntil(5) && g[5] === 0xffff) || zeroUntil(6) || (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0))) {
    return ipv4Class(embedded);
  }
  if ((g[0]! & 0xfe00) === 0xfc00) return "private";
  if ((g[0]! & 0xffc0) === 0xfe80) return "link-local";
  if ((g[0]! & 0xff00) === 0xff00) return "reserved";
  return "public";
}
