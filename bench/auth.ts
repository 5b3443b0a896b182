import { benchControlPlane, call, type BenchPlane } from "./grid.ts";
import { median, p99, round, type Figure } from "./stats.ts";

/** A job in a project, and a member's API token there: what an authorized read needs. */
async function seed(cp: BenchPlane) {
  const project = "bench-auth";
  await call(cp, "POST", "/v1/users", { name: "bench-user" });
  await call(cp, "POST", "/v1/projects", { name: project });
  await call(cp, "PUT", `/v1/projects/${project}/members/bench-user`, { role: "member" });
  const { token } = await call<{ token: string }>(cp, "POST", "/v1/api-tokens", { name: "bench", user: "bench-user" });
  const job = await call<{ id: string }>(cp, "POST", "/v1/jobs", { kind: "python", project, pool: "bench-auth", python: { script: "pass" } });
  return { token, path: `/v1/jobs/${job.id}` };
}

/** One authorized read, timed from the client; anything but 200 ends the run. */
async function timedGet(url: string, token: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${text.slice(0, 300)}`);
  return ms;
}

export interface Target {
  name: string;
  url: string;
  token: string;
}

/**
 * Times the same GET against each target, round-robin with the order rotated every round, so
 * that drift on the machine hits every target alike. Stops after `rounds` or `limitMs`.
 */
export async function interleave(targets: Target[], rounds: number, limitMs: number): Promise<Map<string, number[]>> {
  const samples = new Map(targets.map((t) => [t.name, [] as number[]]));
  for (const t of targets) await timedGet(t.url, t.token); // warm-up: isolates, connections, Durable Objects
  const deadline = performance.now() + limitMs;
  for (let i = 0; i < rounds && performance.now() < deadline; i++) {
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(i + k) % targets.length]!;
      samples.get(t.name)!.push(await timedGet(t.url, t.token));
    }
  }
  return samples;
}

/**
 * 8. What authorization costs per request: p50/p99 of an authorized `GET /v1/jobs/:id` with the
 * admin token (no lookup) and with a project member's API token (one lookup with its
 * memberships, then the role check), on two control planes at once, with the rate limits on
 * and off, interleaved.
 */
export async function benchAuth(rounds: number, limitMs: number): Promise<Figure[]> {
  // The limits' cost does not depend on their values; these keep the loop under them.
  const on = await benchControlPlane({ vars: { RATE_LIMIT_RPS: "100000", RATE_LIMIT_BURST: "100000", ADMIN_RATE_LIMIT_RPS: "100000", ADMIN_RATE_LIMIT_BURST: "100000" } });
  try {
    const off = await benchControlPlane({ vars: { RATE_LIMITS: "off" } });
    try {
      const targets: Target[] = [];
      for (const [limits, cp] of [["limits on", on], ["limits off", off]] as const) {
        const { token, path } = await seed(cp);
        targets.push({ name: `admin token, ${limits}`, url: cp.url + path, token: cp.adminToken }, { name: `member's API token, ${limits}`, url: cp.url + path, token });
      }
      const samples = await interleave(targets, rounds, limitMs);
      const figures: Figure[] = [];
      for (const [name, s] of samples) {
        figures.push({ section: "8 auth", name: `GET /v1/jobs/:id p50, ${name}`, value: round(median(s), 2), unit: "ms" });
        figures.push({ section: "8 auth", name: `GET /v1/jobs/:id p99, ${name}`, value: round(p99(s), 2), unit: "ms" });
      }
      const p50 = (name: string) => median(samples.get(name)!);
      figures.push(
        { section: "8 auth", name: "rate limits' cost p50, member's token (on − off)", value: round(p50("member's API token, limits on") - p50("member's API token, limits off"), 2), unit: "ms" },
        { section: "8 auth", name: "token lookup + role check p50, limits off (member − admin)", value: round(p50("member's API token, limits off") - p50("admin token, limits off"), 2), unit: "ms" },
        { section: "8 auth", name: "requests timed per series", value: Math.min(...[...samples.values()].map((s) => s.length)), unit: "requests" },
      );
      return figures;
    } finally {
      await off.stop();
    }
  } finally {
    await on.stop();
  }
}
