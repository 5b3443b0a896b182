/**
 * Writes agent/seccomp/gridx.json, the seccomp profile every job container gets, from Moby's
 * default profile (agent/seccomp/moby-default.json: github.com/moby/profiles/seccomp v0.2.3,
 * as vendored in moby/moby b985e2313a; Apache-2.0). It is Moby's profile less the syscalls in
 * JOB_DENIED, taken out of every rule, capability-gated ones too, so no container this profile
 * is given can make them, whatever it holds.
 *
 * To follow a newer Moby profile: replace moby-default.json and run
 * `node --import tsx scripts/seccomp-profile.ts`; test/agent/seccomp.test.ts fails while
 * gridx.json is not what this derives.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * The syscalls no job may make, by why. To a container without capabilities, Moby's current
 * default allows ptrace and process_vm_readv/writev, and Docker 20.10's (Debian 12) io_uring too;
 * the rest it allows only with capabilities, which jobs never hold.
 */
export const JOB_DENIED = {
  /** Asynchronous I/O that bypasses the seccomp checks of the calls it stands in for, and a long run of kernel escalations. */
  io_uring: ["io_uring_setup", "io_uring_enter", "io_uring_register"],
  /** Programs loaded into the host kernel. */
  bpf: ["bpf"],
  /** Lets a job stall the kernel at a page fault of its choosing: the usual way to win a kernel race. */
  userfaultfd: ["userfaultfd"],
  /** The kernel keyrings are not namespaced: keys are per uid, shared with the host's uid 1000. */
  keyrings: ["keyctl", "add_key", "request_key"],
  /** Hardware counters and kernel tracepoints; a side channel and a history of kernel bugs. */
  perf: ["perf_event_open"],
  /** Booting another kernel. */
  kexec: ["kexec_load", "kexec_file_load"],
  /** Reading or steering another process: ptrace and the calls with ptrace's access check. A job needs no debugger. */
  ptrace: ["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise"],
} as const;

export const JOB_DENIED_SYSCALLS: readonly string[] = Object.values(JOB_DENIED).flat();

/** The parts of a seccomp profile (Docker's format) this derivation reads; the rest passes through as it is. */
export interface SeccompRule {
  names: string[];
  action: string;
  args?: unknown[];
  includes?: { caps?: string[]; arches?: string[]; minKernel?: string };
  excludes?: { caps?: string[]; arches?: string[] };
  [key: string]: unknown;
}
export interface SeccompProfile {
  defaultAction: string;
  syscalls: SeccompRule[];
  [key: string]: unknown;
}

/** Moby's profile with the denied syscalls out of every rule; a rule left naming none is dropped. */
export function jobSeccompProfile(moby: SeccompProfile): SeccompProfile {
  const denied = new Set(JOB_DENIED_SYSCALLS);
  const syscalls = moby.syscalls.map((rule) => ({ ...rule, names: rule.names.filter((n) => !denied.has(n)) })).filter((rule) => rule.names.length > 0);
  return { ...moby, syscalls };
}

const FOLDER = join(dirname(fileURLToPath(import.meta.url)), "..", "agent", "seccomp");
export const PROFILE_FILES = { moby: join(FOLDER, "moby-default.json"), job: join(FOLDER, "gridx.json") };

/** The file's text: tab-indented like Moby's, so a diff against it reads line by line. */
export const profileText = (p: SeccompProfile) => `${JSON.stringify(p, null, "\t")}\n`;

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const profile = jobSeccompProfile(JSON.parse(readFileSync(PROFILE_FILES.moby, "utf8")) as SeccompProfile);
  writeFileSync(PROFILE_FILES.job, profileText(profile));
  process.stdout.write(`wrote ${PROFILE_FILES.job}\n`);
}
