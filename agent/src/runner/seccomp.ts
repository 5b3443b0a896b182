import type { Runtime } from "../../../protocol/index.ts";
import profile from "../../seccomp/gridx.json" with { type: "json" };

interface Rule {
  names: string[];
  action: string;
  errnoRet?: number;
}

/**
 * The profile for gVisor's kernel, where runsc applies it (--oci-seccomp). runsc (Debian 12's,
 * of 2022) answers every refusal with EPERM, whatever errnoRet says, and clone3's ENOSYS is
 * what tells glibc to fall back to clone: with EPERM no thread could start. So clone3 goes
 * through, and gVisor, which has no clone3, answers ENOSYS itself. (Under runc clone3 stays
 * refused: seccomp cannot see its flags, and it could make namespaces.)
 */
export function forGvisor<P extends { syscalls: Rule[] }>(p: P): P {
  return {
    ...p,
    syscalls: p.syscalls.map((r) => {
      if (r.action !== "SCMP_ACT_ERRNO" || !r.names.includes("clone3")) return r;
      const { errnoRet: _, ...allowed } = r;
      return { ...allowed, action: "SCMP_ACT_ALLOW" };
    }),
  };
}

/**
 * The seccomp profile of every job, by runtime: Moby's default less io_uring, bpf, userfaultfd,
 * the kernel keyrings, perf_event_open, kexec and ptrace (agent/seccomp/gridx.json, which
 * scripts/seccomp-profile.ts derives). Inline, as the engine's API takes it; part of the
 * bundle, so an installed agent needs no file beside it.
 */
export const JOB_SECCOMP: Record<Runtime, string> = {
  runc: `seccomp=${JSON.stringify(profile)}`,
  gvisor: `seccomp=${JSON.stringify(forGvisor(profile))}`,
};
