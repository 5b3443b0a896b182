import { describe, expect, it } from "vitest";
import { isAllowed, runProbe, sshArgs } from "../../agent/src/probe.ts";

describe("probe allowlist", () => {
  const allow = ["uptime", "df -h *", "systemctl status *"];

  it("allows exact commands and `prefix *` entries only", () => {
    expect(isAllowed("uptime", allow)).toBe(true);
    expect(isAllowed("df -h /", allow)).toBe(true);
    expect(isAllowed("systemctl status docker", allow)).toBe(true);
    expect(isAllowed("uptime -p", allow)).toBe(false);
    expect(isAllowed("df -h", allow)).toBe(false);
    expect(isAllowed("rm -rf /", allow)).toBe(false);
    expect(isAllowed("uptime", [])).toBe(false);
  });

  it("refuses shell control characters even after an allowed prefix", () => {
    for (const bad of ["df -h /; rm -rf /", "df -h / && reboot", "df -h $(reboot)", "df -h `id`", "df -h / | sh", "df -h / > /etc/x", "df -h /\nreboot"]) {
      expect(isAllowed(bad, allow)).toBe(false);
    }
  });
});

describe("sshArgs", () => {
  it("uses the key, the port, no prompts and no forwarding", () => {
    const args = sshArgs({ target: "ops@10.0.0.2:2222", keyFile: "/k", allow: [], maxTimeoutS: 5, knownHostsFile: "/kh" }, "uptime");
    expect(args.slice(0, 4)).toEqual(["-i", "/k", "-p", "2222"]);
    expect(args).toContain("BatchMode=yes");
    expect(args).toContain("UserKnownHostsFile=/kh");
    expect(args).toContain("ForwardAgent=no");
    expect(args.slice(-3)).toEqual(["ops@10.0.0.2", "--", "uptime"]);
  });
});

describe("runProbe", () => {
  it("refuses when probes are not configured or the command is not allowed", async () => {
    expect(await runProbe(null, "uptime", 5)).toMatchObject({ status: "refused", error: expect.stringMatching(/not configured/) });
    const cfg = { target: "127.0.0.1", allow: ["uptime"], maxTimeoutS: 5, knownHostsFile: "/dev/null" };
    expect(await runProbe(cfg, "reboot", 5)).toMatchObject({ status: "refused", error: expect.stringMatching(/allowlist/) });
  });
});
