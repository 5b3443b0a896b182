import { AppError } from "../errors.ts";
import type { Principal } from "./principal.ts";
import { allows, NEEDED_FOR, type Role, type Standing } from "./roles.ts";

/** The caller's standing in a project: admin, its role there, or nothing. */
export function standingIn(principal: Principal, project: string): Standing {
  if (principal.kind === "admin") return "admin";
  if (principal.kind === "agent") return null;
  return principal.roles.get(project) ?? null;
}

/** The projects whose contents the caller may read; null means every project (admin). */
export function readableProjects(principal: Principal): string[] | null {
  if (principal.kind === "admin") return null;
  if (principal.kind === "agent") return [];
  return [...principal.roles.keys()];
}

/** The projects a user owns (what an owner may manage: its audit log, its webhooks). */
export function ownedProjects(principal: Extract<Principal, { kind: "user" }>): string[] {
  return [...principal.roles].filter(([, role]) => role === "owner").map(([p]) => p);
}

/**
 * Checks that the caller may do what needs `need` in `project`. A caller who is not a member
 * gets `hidden()` (a 404 naming the resource they asked for, so nothing says whether it
 * exists); a member whose role is too low gets a 403 naming the role needed.
 *
 * @example
 * requireRole(c.get("principal"), job.project, "member", () => new AppError("not_found", `no job ${id}`));
 */
export function requireRole(principal: Principal, project: string, need: Role, hidden: () => AppError): Standing {
  const standing = standingIn(principal, project);
  if (standing === null) throw hidden();
  if (!allows(standing, need)) {
    throw new AppError("forbidden", `this needs the ${need} role in project ${project} (to ${NEEDED_FOR[need]}); you are a ${standing}`);
  }
  return standing;
}
