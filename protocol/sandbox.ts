import { z } from "zod";

/**
 * What a job's container runs on. `runc` is Docker's default: the job shares the host's kernel,
 * behind namespaces, capabilities and seccomp. `gvisor` (runsc) puts a user-space kernel between
 * the job and the host, so a kernel bug the job reaches is gVisor's, not the host's.
 */
export const Runtime = z.enum(["runc", "gvisor"]);
export type Runtime = z.infer<typeof Runtime>;
/** The name each runtime is registered under with dockerd (`"runtimes"` in daemon.json). */
export const OCI_RUNTIME: Record<Runtime, string> = { runc: "runc", gvisor: "runsc" };

/** `none`: no network at all (the default). `egress`: the outside world through the agent's filtered network, where the pool allows it. */
export const JobNetwork = z.enum(["none", "egress"]);
export type JobNetwork = z.infer<typeof JobNetwork>;

/** What an environment build may reach: the pool's egress policy, or nothing. */
export const BuildNetwork = z.enum(["egress", "none"]);
export type BuildNetwork = z.infer<typeof BuildNetwork>;

export const SANDBOX_LIMITS = {
  egress_allow: 64,
  image_patterns: 64,
} as const;

const IPV4 = String.raw`(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}`;
const HOST = String.raw`(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+`;
/**
 * An egress allowlist entry: an IPv4 address, an IPv4 CIDR, or a host name (resolved by the
 * agent when it applies the rules, and again every time it rebuilds them).
 */
export const EgressTarget = z
  .string()
  .regex(new RegExp(`^(${IPV4}(/([12]?\\d|3[0-2]))?|${HOST})$`), "an IPv4 address, an IPv4 CIDR such as 203.0.113.0/24, or a host name");

/** An image name, or a pattern where `*` stands for any run of characters: `ghcr.io/acme/*`. */
export const ImagePattern = z.string().regex(/^[a-z0-9*][a-z0-9._/:@*-]{0,254}$/, "an image reference, `*` standing for any characters (ghcr.io/acme/*)");

/** Whether `image` is allowed by `pattern` (see ImagePattern). */
export function imageMatches(image: string, pattern: string): boolean {
  if (!pattern.includes("*")) return image === pattern;
  const re = new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, "\\$&")).join(".*")}$`);
  return re.test(image);
}

/**
 * A pool's sandbox policy, which an admin sets (`PUT /v1/pools/:pool/sandbox`). Every field has
 * the default a pool gets when nobody set one: runc, no egress, builds through the filtered
 * network, command images from the control plane's ALLOWED_IMAGES only.
 */
export const PoolSandbox = z
  .object({
    /** The runtime of jobs that name none. */
    default_runtime: Runtime.default("runc"),
    /** Runtimes jobs in this pool may ask for. */
    runtimes: z.array(Runtime).min(1).default(["runc", "gvisor"]),
    /** Whether jobs may ask for `"network": "egress"`. */
    egress: z.boolean().default(false),
    /** When not empty, egress (jobs' and builds') reaches only these; private, link-local and host addresses stay blocked even if listed. */
    egress_allow: z.array(EgressTarget).max(SANDBOX_LIMITS.egress_allow, `at most ${SANDBOX_LIMITS.egress_allow} entries`).default([]),
    build_network: BuildNetwork.default("egress"),
    /** Image patterns command jobs may use here, pulled by the agent when missing; on top of ALLOWED_IMAGES. */
    images: z.array(ImagePattern).max(SANDBOX_LIMITS.image_patterns, `at most ${SANDBOX_LIMITS.image_patterns} patterns`).default([]),
    /** Whether members may run processes in their running jobs' containers (`gridx exec`, `gridx shell`). */
    exec: z.boolean().default(true),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (!p.runtimes.includes(p.default_runtime)) ctx.addIssue({ code: "custom", path: ["default_runtime"], message: `${p.default_runtime} is not among the pool's runtimes (${p.runtimes.join(", ")})` });
  });
export type PoolSandbox = z.infer<typeof PoolSandbox>;

/** An attempt's sandbox, as its assignment tells the agent; an assignment without one (an older control plane) means these defaults. */
export const AttemptSandbox = z.object({
  runtime: Runtime.default("runc"),
  network: JobNetwork.default("none"),
  egress_allow: z.array(EgressTarget).max(SANDBOX_LIMITS.egress_allow).default([]),
  build_network: BuildNetwork.default("egress"),
  /** Whether the agent runs exec streams into this attempt's container (the pool's `exec`). */
  exec: z.boolean().default(true),
});
export type AttemptSandbox = z.infer<typeof AttemptSandbox>;
