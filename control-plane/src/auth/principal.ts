import type { Role } from "./roles.ts";

/**
 * Who is calling: the operator (admin token), a user (an API token or a dashboard session
 * acting as that user) or an agent (agent token). A user carries its memberships, read with
 * the token in one query, so a route's role check costs no further read.
 */
export type Principal =
  | { kind: "admin"; tokenId: "admin"; name: "admin" }
  | {
      kind: "user";
      tokenId: string;
      userId: string;
      name: string;
      roles: ReadonlyMap<string, Role>;
      /** When the token (or the dashboard session) stops working; null: until revoked. */
      expiresAt: number | null;
    }
  | { kind: "agent"; tokenId: string; pool: string };

/** The name an action is recorded under: the user's, "admin", or the agent token's id. */
export const actorName = (p: Principal) => (p.kind === "agent" ? p.tokenId : p.name);
