import { requireRole } from "../auth/access.ts";
import type { Principal } from "../auth/principal.ts";
import type { Role, Standing } from "../auth/roles.ts";
import type { Db } from "../db/client.ts";
import { getDataset, type DatasetRow } from "../db/datasets.ts";
import { getJob, type JobRow } from "../db/jobs.ts";
import { getProject, type ProjectRow } from "../db/projects.ts";
import { AppError } from "../errors.ts";

/*
 * Project-owned resources, looked up for a caller: another project's resource is a 404, as if
 * it did not exist, and too low a role a 403 naming the role needed.
 */

/** The 404 for a project the caller may not see or that does not exist; `field` names the request field that named it. */
export const noProject = (name: string, field?: string) => () => new AppError("not_found", `${field ? `${field}: ` : ""}no project ${name}`, field);

/** A project the caller holds `need` in, with the caller's standing there. */
export async function mustGetProject(db: Db, principal: Principal, name: string, need: Role, field?: string): Promise<{ project: ProjectRow; standing: Standing }> {
  const standing = requireRole(principal, name, need, noProject(name, field));
  const project = await getProject(db, name);
  if (!project) throw noProject(name, field)();
  return { project, standing };
}

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
