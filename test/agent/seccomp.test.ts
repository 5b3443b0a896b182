import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { forGvisor, JOB_SECCOMP } from "../../agent/src/runner/seccomp.ts";
import { JOB_DENIED_SYSCALLS, jobSeccompProfile, PROFILE_FILES, profileText, type SeccompProfile, type SeccompRule } from "../../scripts/seccomp-profile.ts";

const read = (path: string) => JSON.parse(readFileSync(path, "utf8")) as SeccompProfile;
const moby = read(PROFILE_FILES.moby);
const job = read(PROFILE_FILES.job);

/** Whether a rule can let a job container (no capabilities, x86-64) make its calls, with some arguments at least. */
const appliesToJobs = (r: SeccompRule) => r.action === "SCMP_ACT_ALLOW" && !r.includes?.caps?.length && (!r.includes?.arches?.length || r.includes.arches.includes("amd64"));
const allowedToJobs = (p: SeccompProfile) => new Set(p.syscalls.filter(appliesToJobs).flatMap((r) => r.names));

describe("the job seccomp profile", () => {
  it("is what scripts/seccomp-profile.ts derives from Moby's default, byte for byte", () => {
    expect(readFileSync(PROFILE_FILES.job, "utf8")).toBe(profileText(jobSeccompProfile(moby)));
  });

  it("allows none of the denied syscalls in any rule, capability-gated ones included", () => {
    const allowed = job.syscalls.filter((r) => r.action === "SCMP_ACT_ALLOW").flatMap((r) => r.names);
    expect(JOB_DENIED_SYSCALLS.filter((n) => allowed.includes(n))).toEqual([]);
    expect(JOB_DENIED_SYSCALLS).toEqual(expect.arrayContaining(["io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "userfaultfd", "keyctl", "add_key", "request_key", "perf_event_open", "kexec_load", "kexec_file_load", "ptrace"]));
    expect(job.defaultAction).toBe("SCMP_ACT_ERRNO");
  });

  it("keeps everything else Moby's default lets a container without capabilities make", () => {
    const lost = [...allowedToJobs(moby)].filter((n) => !allowedToJobs(job).has(n));
    expect(lost.sort()).toEqual(["process_vm_readv", "process_vm_writev", "ptrace"]);
    // What a Python or CUDA job lives on.
    for (const n of ["clone", "execve", "futex", "mmap", "mprotect", "ioctl", "openat", "statx", "epoll_pwait", "memfd_create", "sched_setaffinity", "socket", "wait4"]) expect(allowedToJobs(job).has(n)).toBe(true);
  });

  it("leaves namespaces and mounts to capabilities jobs never hold", () => {
    for (const n of ["unshare", "setns", "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "clone3"]) expect(allowedToJobs(job).has(n)).toBe(false);
  });

  it("goes to the engine inline, as the API takes it", () => {
    expect(JOB_SECCOMP.runc).toBe(`seccomp=${JSON.stringify(job)}`);
    expect(JOB_SECCOMP.gvisor).toBe(`seccomp=${JSON.stringify(forGvisor(job))}`);
  });

  it("lets clone3 through to gVisor's kernel, which says ENOSYS itself, and changes nothing else", () => {
    const gvisor = forGvisor(job);
    const changed = gvisor.syscalls.filter((r, i) => JSON.stringify(r) !== JSON.stringify(job.syscalls[i]));
    expect(changed).toEqual([{ names: ["clone3"], action: "SCMP_ACT_ALLOW", excludes: { caps: ["CAP_SYS_ADMIN"] } }]);
    expect(gvisor.syscalls).toHaveLength(job.syscalls.length);
  });
});
