import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { freePort, runCommand } from "../../scripts/local-grid.ts";

export interface TestSshd {
  port: number;
  user: string;
  clientKey: string;
  stop(): Promise<void>;
}

/** A real sshd on 127.0.0.1 with its own host key, accepting one client key for this user. */
export async function startSshd(dir: string): Promise<TestSshd> {
  const root = mkdtempSync(join(dir, "sshd-"));
  const hostKey = join(root, "host_ed25519");
  const clientKey = join(root, "client_ed25519");
  await runCommand("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  await runCommand("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", clientKey]);
  const authorized = join(root, "authorized_keys");
  await runCommand("cp", [`${clientKey}.pub`, authorized]);
  // Privilege separation wants this folder; it exists wherever sshd runs as a service.
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const port = await freePort();
  const config = join(root, "sshd_config");
  writeFileSync(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorized}`,
      `PidFile ${join(root, "sshd.pid")}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      "StrictModes no",
      "UsePAM no",
      "AllowTcpForwarding no",
      "X11Forwarding no",
    ].join("\n") + "\n",
  );
  const proc: ChildProcess = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", config], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  proc.stderr!.on("data", (c: Buffer) => (log += c.toString()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`sshd exited: ${log}`);
    if (log.includes("Server listening")) break;
    if (Date.now() > deadline) throw new Error(`sshd did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    user: userInfo().username,
    clientKey,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = once(proc, "exit");
      proc.kill("SIGTERM");
      await exited;
    },
  };
}
