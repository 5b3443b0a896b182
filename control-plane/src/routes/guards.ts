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

/** A project's row (`what id`, for the 404) the caller holds `need` in; another project's reads as one that does not exist. */
export function mustOwn<T extends { project: string }>(principal: Principal, row: T | undefined, need: Role, what: string): T {
  const missing = () => new AppError("not_found", `no ${what}`);
  if (!row) throw missing();
  requireRole(principal, row.project, need, missing);
  return row;
}

export async function mustGetJob(db: Db, principal: Principal, id: string, need: Role = "viewer"): Promise<JobRow> {
  return mustOwn(principal, await getJob(db, id), need, `job ${id}`);
}

export async function mustGetDataset(db: Db, principal: Principal, id: string, need: Role = "viewer"): Promise<DatasetRow> {
  return mustOwn(principal, await getDataset(db, id), need, `dataset ${id}`);
}
