import type { InferResponseType } from "hono/client";
import type { JobStatus } from "../../../../protocol/index.ts";
import type { StoredLine } from "../../db/logs.ts";
import type { Api } from "../api.ts";

/** The API's answers as the views see them, derived from the routes through the typed client. */
type Jobs = Api["v1"]["jobs"];
export type JobDetail = InferResponseType<Jobs[":id"]["$get"], 200>;
export type JobSummary = InferResponseType<Jobs["$get"], 200>["jobs"][number];
export type Attempt = InferResponseType<Jobs[":id"]["attempts"]["$get"], 200>["attempts"][number];
/**
 * `GET /v1/jobs/:id/logs` also answers with a raw SSE stream (`follow=1`), which erases its JSON
 * type in Hono's inference; the page is spelled here from the same stored-line type.
 */
export interface LogPage {
  lines: StoredLine[];
  next_cursor: string | null;
  more: boolean;
  status: JobStatus;
}
export type LogLine = StoredLine;
export type Worker = InferResponseType<Api["v1"]["workers"]["$get"], 200>["workers"][number];
export type PoolSummary = InferResponseType<Api["v1"]["pools"]["$get"], 200>["pools"][number];
export type PoolStats = InferResponseType<Api["v1"]["pools"][":pool"]["stats"]["$get"], 200>;
type Projects = Api["v1"]["projects"];
export type Project = InferResponseType<Projects[":project"]["$get"], 200>;
export type Member = InferResponseType<Projects[":project"]["members"]["$get"], 200>["members"][number];
export type Secret = InferResponseType<Projects[":project"]["secrets"]["$get"], 200>["secrets"][number];
export type JobAttempt = JobDetail["attempts"][number];
export type JobRelative = JobDetail["parents"][number];
export type ArraySummary = InferResponseType<Api["v1"]["arrays"][":id"]["$get"], 200>;
export type Schedule = InferResponseType<Api["v1"]["schedules"]["$get"], 200>["schedules"][number];
export type DashboardSession = InferResponseType<Api["v1"]["sessions"]["$get"], 200>["sessions"][number];
export type TokenInfo = InferResponseType<Api["v1"]["agent-tokens"]["$get"], 200>["tokens"][number];
export type IssuedToken = InferResponseType<Api["v1"]["agent-tokens"]["$post"], 201>;
export type AuditEvent = InferResponseType<Api["v1"]["audit"]["$get"], 200>["events"][number];
export type Probe = InferResponseType<Api["v1"]["workers"][":id"]["probes"]["$get"], 200>["probes"][number];
export type Dataset = InferResponseType<Api["v1"]["datasets"]["$get"], 200>["datasets"][number];
export type PoolSandboxView = InferResponseType<Api["v1"]["pools"][":pool"]["sandbox"]["$get"], 200>;
