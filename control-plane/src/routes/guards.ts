import { requireRole } from "../auth/access.ts";
import type { Principal } from "../auth/principal.ts";
import type { Role } from "../auth/roles.ts";
import type { Db } from "../db/client.ts";
import { getDataset, type DatasetRow } from "../db/datasets.ts";
import { getJob, type JobRow } from "../db/jobs.ts";
import { AppError } from "../errors.ts";

/*
 * Project-owned resources, looked up for a caller: another project's resource is a 404, as if
 * it did not exist, and too low a role a 403 naming the role needed.
 */

export async function mustGetJob(db: Db, principal: Principal, id: string, need: Role = "viewer"): Promise<JobRow> {
  const missing = () => new AppError("not_found", `no job ${id}`);
  const job = await getJob(db, id);
  if (!job) throw missing();
  requireRole(principal, job.project, need, missing);
  return job;
}

export async function mustGetDataset(db: Db, principal: Principal, id: string, need: Role = "viewer"): Promise<DatasetRow> {
  const missing = () => new AppError("not_found", `no dataset ${id}`);
  const d = await getDataset(db, id);
  if (!d) throw missing();
  requireRole(principal, d.project, need, missing);
  return d;
}
