import { describe, expect, it } from "vitest";
import { fromPortHost, parsePortHost, PORT_HOST_HEADER, portHostName } from "../../control-plane/src/middleware/port-hosts.ts";

const JOB = "j_0abcdefghjkmnpqrstvwxyz01";

describe("per-port host names", () => {
  it("names a job's port as one DNS label under the domain, and reads it back", () => {
    const host = portHostName(JOB, 8888, "ports.example.com");
    expect(host).toBe("p8888-j-0abcdefghjkmnpqrstvwxyz01.ports.example.com");
    expect(parsePortHost(host, "ports.example.com")).toEqual({ jobId: JOB, port: 8888 });
    expect(parsePortHost(`${host.toUpperCase()}:8443`, "ports.example.com")).toEqual({ jobId: JOB, port: 8888 });
  });

  it("reads no port from hosts outside the domain or off the pattern", () => {
    const hosts = ["ports.example.com", "gridx.example.com", "p8888-j-abc.evil.com", "p0-j-abc.ports.example.com", "p70000-j-abc.ports.example.com", "x.p8888-j-abc.ports.example.com", "p8888-j_abc.ports.example.com"];
    expect(hosts.map((h) => parsePortHost(h, "ports.example.com"))).toEqual(hosts.map(() => null));
  });

  it("rewrites a port host's request under the port's path, once, and marks it", () => {
    const root = fromPortHost(new Request(`https://${portHostName(JOB, 8888, "p.test")}/api/status?x=1`), "p.test");
    expect(new URL(root.url).pathname).toBe(`/v1/jobs/${JOB}/ports/8888/api/status`);
    expect(new URL(root.url).search).toBe("?x=1");
    expect(root.headers.get(PORT_HOST_HEADER)).toBe("1");
    // A server told its base URL links under the port's path already.
    const based = fromPortHost(new Request(`https://${portHostName(JOB, 8888, "p.test")}/v1/jobs/${JOB}/ports/8888/static/a.js`), "p.test");
    expect(new URL(based.url).pathname).toBe(`/v1/jobs/${JOB}/ports/8888/static/a.js`);
  });

  it("drops a client's own marker on every other request", () => {
    const forged = new Request("https://gridx.example.com/v1/jobs", { headers: { [PORT_HOST_HEADER]: "1" } });
    expect(fromPortHost(forged, "p.test").headers.has(PORT_HOST_HEADER)).toBe(false);
    expect(fromPortHost(forged, undefined).headers.has(PORT_HOST_HEADER)).toBe(false);
    const plain = new Request("https://gridx.example.com/v1/jobs");
    expect(fromPortHost(plain, "p.test")).toBe(plain);
  });
});
