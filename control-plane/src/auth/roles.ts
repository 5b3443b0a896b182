/** A member's role in a project: owners manage members and secrets, members act, viewers read. */
export const ROLES = ["owner", "member", "viewer"] as const;
export type Role = (typeof ROLES)[number];

const RANK: Record<Role, number> = { viewer: 1, member: 2, owner: 3 };

/** What a caller may do in one project: everything (admin), what a role allows, or nothing. */
export type Standing = Role | "admin" | null;

/** Whether a standing allows what needs `need`. */
export const allows = (standing: Standing, need: Role) => standing === "admin" || (standing !== null && RANK[standing] >= RANK[need]);

/** What each role is needed for, for the message a refused caller reads. */
export const NEEDED_FOR: Record<Role, string> = {
  viewer: "read",
  member: "submit, cancel and upload",
  owner: "manage members, secrets and quotas",
};
