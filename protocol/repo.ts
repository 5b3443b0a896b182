import { z } from "zod";

/** Bounds on a `repo` job's fields. */
export const REPO_LIMITS = {
  url_chars: 2048,
  ref_chars: 255,
  dockerfile_chars: 255,
  /** What an agent reports as warm: the most recently used environments and repositories. */
  warm_entries: 256,
} as const;

/**
 * A repository location an agent can fetch: https or http, ssh (`ssh://` or scp-like
 * `user@host:path`), `git://`, or an absolute path / `file://` URL for local use (agents
 * accept those only when their operator allows it). Credentials never go in the URL: they
 * come from a project secret, so they are never stored with the job or shown.
 */
export const RepoUrl = z
  .string()
  .min(1, "the repository URL is empty")
  .max(REPO_LIMITS.url_chars)
  .refine((u) => !u.startsWith("-") && !/[\s\0]/.test(u), "a repository URL without spaces or a leading '-'")
  .refine(
    (u) =>
      /^(https?|ssh|git):\/\/[^/]+\/./.test(u) || /^file:\/\/\/./.test(u) || /^\/./.test(u) || /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/]/.test(u),
    "https://host/path, ssh://host/path, user@host:path, git://host/path, file:///path or /path",
  )
  .refine((u) => !/^(https?|ssh|git):\/\/[^/@]*:[^/@]*@/.test(u), "no password in the URL: store it as a project secret and name it in code_credentials or env_credentials");
export type RepoUrl = z.infer<typeof RepoUrl>;

/** The form of a full commit id; anything else names a branch or tag the agent resolves. */
export const COMMIT_ID = /^[0-9a-f]{40}$/;

/**
 * A commit id or a branch/tag name, as `git check-ref-format` allows it (roughly), never
 * starting with '-' so it can never be read as a git option.
 */
export const GitRef = z
  .string()
  .min(1, "the commit is empty")
  .max(REPO_LIMITS.ref_chars)
  .regex(/^(?!-)(?!.*\.\.)(?!.*\/\/)(?!.*@\{)(?!\/)[A-Za-z0-9._/-]+(?<![./])$/, "a 40-hex commit id, or a branch or tag name")
  .refine((r) => !r.endsWith(".lock") && !r.split("/").some((p) => p.startsWith(".")), "a 40-hex commit id, or a branch or tag name");

/** A file inside the environment repository: relative, no `..`. */
export const DockerfilePath = z
  .string()
  .min(1)
  .max(REPO_LIMITS.dockerfile_chars)
  .regex(/^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._\-/]+$/, "a relative path inside the environment repository, without '..'")
  .refine((p) => !p.split("/").includes(""), "a path without empty parts");

/** A project secret's name. */
export const SecretName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "letters, digits, '.', '_' or '-', 1 to 63 characters");
export const ProjectName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "lowercase letters, digits, '.', '_' or '-', 1 to 63 characters");

/** Seed 001's distribution model: the code at one commit, run in an image built from another. */
export const RepoSource = z
  .object({
    code_repo_url: RepoUrl,
    code_commit_id: GitRef,
    env_repo_url: RepoUrl,
    env_commit_id: GitRef,
    dockerfile_path: DockerfilePath.default("Dockerfile"),
    /** The project whose secrets `code_credentials` and `env_credentials` name: the job's own, unless given. */
    project: ProjectName.optional(),
    code_credentials: SecretName.optional(),
    env_credentials: SecretName.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    // A token sent over plain http could be read on the way.
    for (const side of ["code", "env"] as const) {
      if (r[`${side}_credentials`] && /^http:\/\//.test(r[`${side}_repo_url`]) && !/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(r[`${side}_repo_url`])) {
        ctx.addIssue({ code: "custom", path: [`${side}_credentials`], message: "credentials are only sent over https (or http to this machine)" });
      }
    }
  });
export type RepoSource = z.infer<typeof RepoSource>;

/** The commits an attempt actually ran, resolved on the agent. */
export const ResolvedCommits = z.object({
  code_commit_id: z.string().regex(COMMIT_ID).optional(),
  env_commit_id: z.string().regex(COMMIT_ID).optional(),
  /** The image that ran: a repo job's environment tag, or a pulled image pinned by digest (`name@sha256:…`). */
  image: z.string().max(300),
});
export type ResolvedCommits = z.infer<typeof ResolvedCommits>;

/** Git credentials for one attempt, decrypted by the coordinator: a token (https) or a private key (ssh). */
export const RepoCredentials = z.object({
  code: z.string().max(16384).optional(),
  env: z.string().max(16384).optional(),
  /** A command job's registry login, `username:password`. */
  registry: z.string().max(16384).optional(),
});
export type RepoCredentials = z.infer<typeof RepoCredentials>;

/** 64-bit FNV-1a over UTF-8, as hex: a short, stable, synchronous digest both runtimes compute alike. */
function fnv1a64(s: string): string {
  let h = 0xcbf29ce484222325n;
  const mix = (byte: number) => {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  };
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp < 0x80) mix(cp);
    else if (cp < 0x800) [0xc0 | (cp >> 6), 0x80 | (cp & 63)].forEach(mix);
    else if (cp < 0x10000) [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)].forEach(mix);
    else [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)].forEach(mix);
  }
  return h.toString(16).padStart(16, "0");
}

/**
 * Names an environment as a job asks for it, so agents can say which they have warm and
 * the scheduler can send a job where its image already is.
 */
export const envKey = (r: Pick<RepoSource, "env_repo_url" | "env_commit_id" | "dockerfile_path">) =>
  fnv1a64(JSON.stringify([r.env_repo_url, r.env_commit_id, r.dockerfile_path]));
export const repoKey = (url: string) => fnv1a64(url);

/** What an agent has cached: keys from `envKey` and `repoKey`, most recently used first. */
export const WarmCache = z.object({
  envs: z.array(z.string().max(32)).max(REPO_LIMITS.warm_entries),
  repos: z.array(z.string().max(32)).max(REPO_LIMITS.warm_entries),
});
export type WarmCache = z.infer<typeof WarmCache>;
