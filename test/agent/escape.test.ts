/**
 * The escape suite: real jobs through DockerRunner on the real engine, under every runtime
 * this machine's dockerd has, each trying what a hostile job would. One job per runtime
 * reports most properties as JSON (a container costs far more than a check); the fork and
 * memory bombs run apart.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runtimesOf } from "../../agent/src/caps.ts";
import { DockerEngine } from "../../agent/src/docker/engine.ts";
import { silentLogger } from "../../agent/src/logger.ts";
import { DockerRunner } from "../../agent/src/runner/docker-runner.ts";
import type { RunHooks } from "../../agent/src/runner/runner.ts";
import { AttemptSandbox, JobRequest, Runtime, type JobLimits } from "../../protocol/index.ts";
import { localStore } from "../support/local-store.ts";

const docker = new DockerEngine();
const runtimes = runtimesOf((await docker.info()).Runtimes);
/** Runtimes the suite must find, so a machine that lost one fails rather than tests less; CI (.ci/run) sets runc,gvisor. */
const REQUIRED = (process.env.GRIDX_REQUIRE_RUNTIMES ?? "runc").split(",").map((r) => Runtime.parse(r.trim()));

let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function runJob(runtime: Runtime, script: string, limits: Partial<JobLimits> = {}) {
  const stateDir = mkdtempSync(join(tmpdir(), "gridx-escape-"));
  const store = await localStore(join(stateDir, "cache"));
  const r = new DockerRunner(docker, { stateDir, agentName: "escape", instance: randomBytes(16).toString("hex"), images: { python: "gridx/python:latest" }, stopGraceS: 1, tmpfsMb: 16, outputCapBytes: 1 << 20, allowedImages: [], transfers: store.transfers }, silentLogger);
  cleanup.push(() => store.close(), () => r.cleanupLeftovers());
  let stdout = "";
  const hooks: RunHooks = { started() {}, output: (stream, chunk) => void (stream === "stdout" && (stdout += chunk.toString())), system() {}, congested: () => false };
  const spec = JobRequest.parse({ kind: "python", python: { script }, limits });
  const out = await r.run({ jobId: `j_escape_${runtime}`, attempt: 1, spec, gpuIndices: [], inputs: [], sandbox: AttemptSandbox.parse({ runtime }) }, hooks, new AbortController().signal);
  return { out, stdout, uploaded: [...store.completed.keys()].sort() };
}

/** Tries each way out and prints one JSON line: "ok" where a step worked, else its errno's name. */
const PROBE = String.raw`
import ctypes, errno, json, os, socket, stat, threading, time
libc = ctypes.CDLL(None, use_errno=True)
name = lambda e: errno.errorcode.get(e, str(e))
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return name(e.errno)
def checked(r):
    return "ok" if r >= 0 else name(ctypes.get_errno())
def syscall(nr, *args):
    return checked(libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args]))
def cstr(s):
    return ctypes.addressof(ctypes.create_string_buffer(s))
write = lambda path: attempt(lambda: open(path, "w").write("x"))
connect = lambda host: attempt(lambda: socket.create_connection((host, 80), timeout=2).close())
def ptrace_a_child():
    pid = os.fork()
    if pid == 0:
        time.sleep(10)
        os._exit(0)
    r = syscall(101, 16, pid, 0, 0)  # PTRACE_ATTACH
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return r
def a_thread():
    t = threading.Thread(target=time.sleep, args=(0,))
    t.start()
    t.join()
status = dict(l.rstrip("\n").split(":\t", 1) for l in open("/proc/self/status"))
params = ctypes.create_string_buffer(128)
report = {
    "kernel": open("/proc/version").read().strip(),
    "uid": os.getuid(), "gid": os.getgid(),
    "cap_eff": status["CapEff"],
    "seccomp": status.get("Seccomp"),
    "ifaces": sorted(n for _, n in socket.if_nameindex()),
    "connect_loopback": connect("127.0.0.1"),
    "connect_bridge": connect("172.17.0.1"),
    "connect_outside": connect("1.1.1.1"),
    "docker_socket": [p for p in ("/var/run/docker.sock", "/run/docker.sock") if os.path.exists(p)],
    "write_root": write("/etc/gridx-escape"),
    "write_input": write("/work/input/gridx-escape"),
    "write_output": write("/work/output/kept.txt"),
    "write_tmp": write("/tmp/gridx-escape"),
    "write_proc_sys": write("/proc/sys/kernel/hostname"),
    "write_sys": write("/sys/kernel/uevent_helper"),
    "dev": sorted(os.listdir("/dev")),
    # What a job does need, refused by nothing: threads (clone3 refused with ENOSYS, glibc falls back to clone).
    "thread": attempt(a_thread),
    "mknod": attempt(lambda: os.mknod("/work/output/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))),
    "mount": checked(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
    "unshare_user": checked(libc.unshare(0x10000000)),
    "unshare_mount": checked(libc.unshare(0x00020000)),
    "ptrace": ptrace_a_child(),
    "keyctl": syscall(250, 1, 0),  # KEYCTL_JOIN_SESSION_KEYRING
    "add_key": syscall(248, cstr(b"user"), cstr(b"gridx"), cstr(b"x"), 1, -3),
    "request_key": syscall(249, cstr(b"user"), cstr(b"gridx"), 0, -3),
    "io_uring_setup": syscall(425, 1, ctypes.addressof(params)),
    "bpf": syscall(321, 0, ctypes.addressof(params), 128),
    "userfaultfd": syscall(323, 0),
    "perf_event_open": syscall(298, ctypes.addressof(params), 0, -1, -1, 0),
    "kexec_load": syscall(246, 0, 0, 0, 0),
}
# Left for the upload: neither may go up (the link points at a host file).
os.symlink("/etc/passwd", "/work/output/passwd")
os.mkfifo("/work/output/fifo")
print(json.dumps(report))
`;

/** /dev in a job: Docker's standard set; gVisor adds its own emulated fuse and net/tun, none of them the host's. */
const STANDARD_DEV = ["fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"];
const DENIED = ["mount", "unshare_user", "unshare_mount", "ptrace", "keyctl", "add_key", "request_key", "io_uring_setup", "bpf", "userfaultfd", "perf_event_open", "kexec_load"] as const;

interface ForkBombEnd {
  exit_code: number | "not 0" | null;
  failure_reason: string | null;
  /** How many forks worked before one was refused, and why; null when none was. */
  refused: [string, string] | null;
}

/**
 * Where the runtimes differ in how they refuse: the host kernel's errno under runc, gVisor's
 * under gVisor. The pids limit bounds the host's processes: under runc the job's, so the fork
 * past it fails; under gVisor gVisor's own threads count too, and past it the sandbox ends.
 */
const REFUSALS: Record<Runtime, { readOnly: string; unreachable: string; dev: string[]; forkBomb: (forked: number) => ForkBombEnd }> = {
  runc: { readOnly: "EROFS", unreachable: "ENETUNREACH", dev: STANDARD_DEV, forkBomb: (n) => ({ exit_code: 0, failure_reason: null, refused: [String(n), "Resource temporarily unavailable"] }) },
  gvisor: {
    readOnly: "EACCES",
    unreachable: "EHOSTUNREACH",
    dev: [...STANDARD_DEV.filter((d) => d !== "mqueue"), "fuse", "net"].sort(),
    forkBomb: () => ({ exit_code: "not 0", failure_reason: "exit_code", refused: null }),
  },
};
/** gVisor's /proc/version, the same on every machine: the kernel a job sees there is gVisor's, not the host's. */
const GVISOR_KERNEL = "Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016";

describe("the escape suite", () => {
  it(`runs under every runtime this machine must have (GRIDX_REQUIRE_RUNTIMES: ${REQUIRED.join(",")})`, () => {
    expect(runtimes).toEqual(expect.arrayContaining(REQUIRED));
  });
});

describe.each(runtimes)("a job under %s", (runtime) => {
  it("has no network, no way to write outside its output, no capabilities, no devices and none of the denied syscalls", async () => {
    const { out, stdout, uploaded } = await runJob(runtime, PROBE);
    expect(out).toMatchObject({ exit_code: 0, failure_reason: null });
    const report = JSON.parse(stdout) as Record<string, unknown>;
    const refusals = REFUSALS[runtime];
    expect(report).toEqual({
      kernel: runtime === "gvisor" ? GVISOR_KERNEL : readFileSync("/proc/version", "utf8").trim(),
      uid: 1000,
      gid: 1000,
      cap_eff: "0000000000000000",
      // 2: a seccomp filter is on; under gVisor that is the job profile inside gVisor's kernel (runsc --oci-seccomp).
      seccomp: "2",
      ifaces: ["lo"],
      connect_loopback: "ECONNREFUSED",
      connect_bridge: refusals.unreachable,
      connect_outside: refusals.unreachable,
      docker_socket: [],
      write_root: refusals.readOnly,
      write_input: refusals.readOnly,
      write_output: "ok",
      write_tmp: "ok",
      write_proc_sys: refusals.readOnly,
      write_sys: refusals.readOnly,
      dev: refusals.dev,
      thread: "ok",
      mknod: "EPERM",
      ...Object.fromEntries(DENIED.map((d) => [d, "EPERM"])),
    });
    expect(uploaded).toEqual([".gridx/job.log", "kept.txt"]);
  });

  it("cannot fork past its pids limit", async () => {
    const pids = 128;
    const script = [
      "import os, sys, time",
      "n = 0",
      "try:",
      "    for _ in range(100000):",
      "        if os.fork() == 0:",
      "            time.sleep(60)",
      "            os._exit(0)",
      "        n += 1",
      "        print('forked', n, flush=True)",
      "except OSError as e:",
      "    print('refused after', n, e.strerror, flush=True)",
      "    sys.exit(0)",
    ].join("\n");
    const { out, stdout } = await runJob(runtime, script, { pids, timeout_s: 60 });
    const forked = (stdout.match(/^forked \d+$/gm) ?? []).length;
    expect(forked).toBeLessThan(pids);
    const refused = /^refused after (\d+) (.*)$/m.exec(stdout);
    const end: ForkBombEnd = { exit_code: out.exit_code === null || out.exit_code === 0 ? out.exit_code : "not 0", failure_reason: out.failure_reason, refused: refused ? [refused[1]!, refused[2]!] : null };
    expect(end).toEqual(REFUSALS[runtime].forkBomb(forked));
  });

  it("is killed past its memory limit, and fails oom", async () => {
    const { out, stdout } = await runJob(runtime, "print('allocating', flush=True)\nx = bytearray(400 * 1024 * 1024)\nprint('allocated', len(x))", { memory_mb: 64 });
    expect(out).toMatchObject({ failure_reason: "oom", message: expect.stringContaining("64 MiB") });
    expect(stdout).toBe("allocating\n");
  });
});
