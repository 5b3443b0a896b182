/** Who is calling: the operator (admin token), a user (API token) or an agent (agent token). */
export type Principal =
  | { kind: "admin"; tokenId: "admin" }
  | { kind: "user"; tokenId: string }
  | { kind: "agent"; tokenId: string; pool: string };
