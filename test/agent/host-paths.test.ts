import { describe, expect, it } from "vitest";
import { HostPaths, hostPathsHidden, SCRATCH_PLACEHOLDER, STATE_PLACEHOLDER } from "../../agent/src/runner/host-paths.ts";
import { jobFolderAt, jobUserOnHost } from "../../agent/src/runner/job-folder.ts";
import { SecretMasker } from "../../agent/src/runner/masking.ts";

const state = "/var/lib/gridx";
const folder = jobFolderAt(`${state}/jobs/0123abcd/j_1.2`);
const paths = new HostPaths(state, folder, "/tmp/gridx-");

describe("HostPaths", () => {
  it("shows a job folder's paths as its mount point, keeping the job's own part", () => {
    expect(paths.text(`EEXIST: file already exists, mkdir '${folder.input}/a'`)).toBe("EEXIST: file already exists, mkdir '/work/input/a'");
    expect(paths.text(`bind source path does not exist: ${folder.code}`)).toBe("bind source path does not exist: /work/code");
    expect(paths.text(`${folder.output}/x and ${folder.input}`)).toBe("/work/output/x and /work/input");
  });

  it("drops any other path under the state folder whole, naming neither the cache nor other jobs", () => {
    expect(paths.text(`ENOENT: no such file or directory, copyfile '${state}/cache/5f1e.bin' -> '${folder.input}/d.csv'`)).toBe(`ENOENT: no such file or directory, copyfile '${STATE_PLACEHOLDER}' -> '/work/input/d.csv'`);
    expect(paths.text(`open ${folder.dir}/job.log: EACCES`)).toBe(`open ${STATE_PLACEHOLDER}: EACCES`);
    expect(paths.text(`fatal: '${state}/git/ab.git' is locked; ${state}`)).toBe(`fatal: '${STATE_PLACEHOLDER}' is locked; ${STATE_PLACEHOLDER}`);
    expect(paths.text(`${state}/jobs/0123abcd/j_9.1/input (another job's)`)).toBe(`${STATE_PLACEHOLDER} (another job's)`);
    // git names its --git-dir where it would name the subcommand.
    expect(paths.text(`could not fetch main from https://h/r.git: git ${state}/git/ab12.git failed (128): fatal: unable to access`)).toBe(`could not fetch main from https://h/r.git: git ${STATE_PLACEHOLDER} failed (128): fatal: unable to access`);
  });

  it("does not take a longer name for the folder it begins with", () => {
    expect(paths.text("/var/lib/gridx2/x and /var/lib/gridx-old")).toBe("/var/lib/gridx2/x and /var/lib/gridx-old");
    expect(paths.text(`${folder.input}s/a ${folder.dir}0/input`)).toBe(`${STATE_PLACEHOLDER} ${STATE_PLACEHOLDER}`);
  });

  it("hides the agent's scratch files, such as a job's SSH key", () => {
    expect(paths.text('Load key "/tmp/gridx-ssh-Xy12/key": invalid format')).toBe(`Load key "${SCRATCH_PLACEHOLDER}": invalid format`);
  });

  it("knows the state folder given with a trailing slash", () => {
    expect(new HostPaths(`${state}/`, null, "/tmp/gridx-").text(`${state}/cache/x`)).toBe(STATE_PLACEHOLDER);
  });

  it("leaves text without host paths as it is, container paths included", () => {
    const text = "the job exited with code 1; see /work/output/log and /tmp/x";
    expect(paths.text(text)).toBe(text);
  });

  it("applied after the masker, a secret that holds a state path is still masked whole", () => {
    const secret = `${state}/keys/deploy-token-7f3a`;
    const masker = new SecretMasker([secret]);
    expect(paths.text(masker.text(`reading ${secret} failed`))).toBe("reading *** failed");
  });

  it("rewrites the system lines a run writes, and only those", () => {
    const seen: string[] = [];
    const out: Buffer[] = [];
    const hooks = hostPathsHidden({ started() {}, output: (_s, c) => void out.push(c), system: (t) => void seen.push(t), congested: () => false }, paths);
    hooks.system(`[gridx: input ${folder.input}/a]`);
    hooks.output("stdout", Buffer.from(folder.input));
    expect(seen).toEqual(["[gridx: input /work/input/a]"]);
    expect(out.map(String)).toEqual([folder.input]);
  });
});

describe("jobUserOnHost", () => {
  it("is the job user itself on an engine that does not remap users", () => {
    expect(jobUserOnHost({ SecurityOptions: ["name=seccomp,profile=default"], DockerRootDir: "/var/lib/docker" })).toEqual({ uid: 1000, gid: 1000 });
    expect(jobUserOnHost({})).toEqual({ uid: 1000, gid: 1000 });
  });

  it("is shifted by the remapped root's ids, read from the data root, under userns-remap", () => {
    expect(jobUserOnHost({ SecurityOptions: ["name=seccomp,profile=default", "name=userns"], DockerRootDir: "/var/lib/docker/100000.100000" })).toEqual({ uid: 101000, gid: 101000 });
    expect(jobUserOnHost({ SecurityOptions: ["name=userns"], DockerRootDir: "/srv/d/231072.296608/" })).toEqual({ uid: 232072, gid: 297608 });
  });

  it("refuses to guess when the data root does not name the remapped root", () => {
    expect(() => jobUserOnHost({ SecurityOptions: ["name=userns"], DockerRootDir: "/var/lib/docker" })).toThrow(/userns-remap.*\/var\/lib\/docker does not end in <uid>\.<gid>/);
  });
});
