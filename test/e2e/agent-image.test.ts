import { mkdtempSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollUntil } from "../helpers/poll.ts";
import { buildAgent } from "../../scripts/build-agent.ts";
import { issueAgentToken, ROOT, runCommand } from "../../scripts/local-grid.ts";
import { api, containersOf, cp, isDone, removeContainersOfAgent, submit, uniqueName, waitForJob, waitForWorker } from "./helpers.ts";

const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

const docker = (...args: string[]) => runCommand("docker", args);
const inspect = async (id: string) => JSON.parse(await docker("inspect", id))[0];

/**
 * The agent as its image runs it (docs/agent.md, "Container image"): the host's socket and its
 * state folder, at the same path, mounted; the host's network, where the e2e control plane
 * listens on 127.0.0.1.
 */
describe("the agent image", () => {
  const pool = uniqueName("image");
  const name = uniqueName("img");
  const container = `gridx-agent-e2e-${name}`;
  let stateDir: string;

  beforeAll(async () => {
    // The image holds the bundle of the current sources; Docker's cache makes an unchanged one a second's work.
    buildAgent();
    await runCommand("bash", [join(ROOT, "agent", "image", "build.sh")]);
    const token = await issueAgentToken(cp(), name, pool);
    stateDir = mkdtempSync(join(cp().stateDir, "agent-image-"));
    // The line docs/agent.md gives, all of it: egress (NET_ADMIN on the host's network) and the
    // host's cgroups (usage, builds' process limit). The token comes from this process's
    // environment, so it is not on the docker command line.
    const run = ["run", "-d", "--name", container, "--init", "--network", "host", "--cap-add", "NET_ADMIN", "--cgroupns", "host"];
    const mounts = ["-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", `${stateDir}:${stateDir}`, "-v", "/sys/fs/cgroup:/sys/fs/cgroup"];
    const env = ["-e", `GRIDX_STATE_DIR=${stateDir}`, "-e", "GRIDX_AGENT_TOKEN", "-e", `GRIDX_URL=${cp().url}`, "-e", `GRIDX_AGENT_NAME=${name}`];
    await runCommand("docker", [...run, ...mounts, ...env, `gridx/agent:${VERSION}`], { env: { GRIDX_AGENT_TOKEN: token } });
  });

  afterAll(async () => {
    await docker("rm", "-f", container).catch(() => undefined);
    await removeContainersOfAgent(name);
  });

  it("is tagged with the package's version and latest, as one image", async () => {
    const [versioned, latest] = await Promise.all([inspect(`gridx/agent:${VERSION}`), inspect("gridx/agent:latest")]);
    expect(versioned.Id).toBe(latest.Id);
    expect(versioned.Config.Labels["org.opencontainers.image.version"]).toBe(VERSION);
  });

  it("connects as a worker of its pool with its version, relaying to ports with the image's busybox, with egress", async () => {
    const worker = await waitForWorker(pool, name, "online", 90_000).catch(async (err: Error) => {
      throw new Error(`${err.message}; the agent container said:\n${await docker("logs", container).catch((e: Error) => e.message)}`);
    });
    expect(worker.agent_version).toBe(VERSION);
    expect(worker.caps).toMatchObject({ ports: true, egress: true });
  });

  it("runs a job in a sibling container on the host's engine, sandboxed as ever, with its logs, output and usage", async () => {
    // The job outlasts a few polls of `docker ps`, so its container is seen while it runs.
    const script = "import time\nprint('from the image', flush=True)\ntime.sleep(4)\nopen('/work/output/result.txt', 'w').write('42')";
    const job = await submit({ kind: "python", pool, python: { script } });
    const running = await pollUntil(() => containersOf(job.id), (ids) => ids.length > 0, {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: `job ${job.id}'s container on the host engine`,
    });
    const sibling = await inspect(running[0]!);
    const agent = await inspect(container);
    expect(sibling.Id).not.toBe(agent.Id);
    expect(sibling.Config.Labels["gridx.agent"]).toBe(name);
    // Its folders are the state folder's, resolved on the host: the same path the agent sees.
    expect(sibling.HostConfig.Binds.some((b: string) => b.startsWith(`${stateDir}/`) && b.endsWith(":/work/output:rw"))).toBe(true);
    expect(sibling.HostConfig.Binds.every((b: string) => b.startsWith(`${stateDir}/`))).toBe(true);
    expect(sibling.HostConfig).toMatchObject({ NetworkMode: "none", ReadonlyRootfs: true, CapDrop: ["ALL"], Privileged: false });
    expect(sibling.HostConfig.SecurityOpt[0]).toBe("no-new-privileges:true");
    expect(sibling.HostConfig.SecurityOpt[1]).toMatch(/^seccomp=/);

    const done = await waitForJob(job.id, isDone);
    expect(done).toMatchObject({ status: "completed", stdout: "from the image\n" });
    // Read from the host's cgroups, which only the mounted /sys/fs/cgroup shows the agent.
    expect(done.usage.peak_memory_mb).toBeGreaterThan(1);
    expect((await api(`/v1/jobs/${job.id}/logs`)).json.lines.map((l: { text: string }) => l.text)).toContain("from the image");
    const download = await api(`/v1/jobs/${job.id}/artifacts/result.txt`, { redirect: "manual" });
    expect(download.status).toBe(302);
    expect(await (await fetch(download.headers.get("location")!)).text()).toBe("42");
  });

  it("stops on docker stop, removing what it started on the host", async () => {
    await docker("stop", "-t", "60", container);
    expect((await inspect(container)).State.ExitCode).toBe(0);
    expect(await docker("ps", "-aq", "--filter", `label=gridx.agent=${name}`)).toBe("");
    await waitForWorker(pool, name, "offline", 30_000);
  });
});
