import { join } from "node:path";
import { Agent } from "./agent.ts";
import { detectCaps } from "./caps.ts";
import { DockerEngine, engineAddress } from "./docker/engine.ts";
import { configToEnv, loadConfig, takeFlags } from "./config.ts";
import { DEFAULT_PATHS, install, SERVICE_NAME, status, uninstall } from "./service.ts";
import { createLogger } from "./logger.ts";
import { connectUrl } from "./connection.ts";
import { networkOptions } from "./network.ts";
import { EgressNetworks } from "./sandbox-net/egress.ts";
import { confineBuilds, removeBuildCgroup } from "./repos/build-limits.ts";
import { EnvImages } from "./repos/env-images.ts";
import { GitCache } from "./repos/git-cache.ts";
import { RepoWorkspace } from "./repos/workspace.ts";
import { LoginPulls, loginPullsFile } from "./runner/command-image.ts";
import { DockerRunner } from "./runner/docker-runner.ts";
import { trackUsage } from "./runner/usage.ts";
import { LEASE_DEFAULTS, startWarden } from "./runner/warden.ts";
import { agentInstance } from "./identity.ts";
import { DEFAULT_LOG_LIMITS } from "./runner/log-collector.ts";
import { InputCache } from "./transfer/input-cache.ts";
import { artifactApi } from "./transfer/uploader.ts";
import { findRelayBusybox } from "./tunnel/busybox.ts";
import { DockerReach } from "./tunnel/reach.ts";
import { AGENT_VERSION } from "./version.ts";
import { BundleStore } from "./upgrade/bundle-store.ts";
import { RESTART_EXIT } from "../bin/bundle-choice.mjs";

const USAGE = `usage: gridx-agent [run] --url URL [--name NAME] [--slots N] [--prestart N] [--prefetch N] [--label k=v]... [--once]
       [--state-dir DIR] [--cpus N] [--memory-mb N] [--allow-image PATTERN]... [--pull-timeout S] [--stop-grace S]
       [--drain-grace S] [--lease-s S] [--tmpfs-mb N] [--output-cap-mb N] [--log-cap-mb N] [--cache-mb N] [--git-cache-mb N]
       [--git-timeout S] [--build-timeout S] [--build-cpus N] [--build-memory-mb N] [--build-pids N] [--build-max-gb N]
       [--image-cache-gb N] [--docker-timeout S] [--allow-local-repos] [--ca-file PEM] [--config FILE]
       [--no-egress] [--egress-deny CIDR]... [--upgrade-confirm-s S]
       gridx-agent install --url URL --token TOKEN [options above] | uninstall | status
The token is best passed as GRIDX_AGENT_TOKEN. Every flag has an environment variable (GRIDX_URL,
GRIDX_SLOTS, ...) and a config-file key (/etc/gridx/agent.json); flags win over the environment,
the environment over the file. See the README for the full table.
--lease-s (default ${LEASE_DEFAULTS.leaseS}): a job container outlives a killed agent by at most this plus ${LEASE_DEFAULTS.checkS + LEASE_DEFAULTS.graceS} s; keep it
below the control plane's WORKER_TIMEOUT_S (90 s by default), so the job is requeued only after.`;

async function service(command: "install" | "uninstall" | "status", argv: string[]): Promise<number> {
  const { taken, rest } = takeFlags(argv, ["unit-dir", "config-dir", "user"], ["no-start"]);
  const paths = { unitDir: (taken["unit-dir"] as string) || DEFAULT_PATHS.unitDir, configDir: (taken["config-dir"] as string) || DEFAULT_PATHS.configDir };
  if (command === "status") {
    process.stdout.write((await status(paths)) + "\n");
    return 0;
  }
  if (command === "uninstall") {
    await uninstall(paths, Boolean(taken["no-start"]));
    process.stdout.write(`${SERVICE_NAME}: uninstalled\n`);
    return 0;
  }
  const loaded = loadConfig(rest, process.env);
  if (!loaded.ok) {
    process.stderr.write(`gridx-agent install: ${loaded.error}\n${USAGE}\n`);
    return 2;
  }
  const done = await install({
    paths,
    env: configToEnv(loaded.config),
    drainGraceS: loaded.config.drainGraceS,
    user: taken.user as string | undefined,
    noStart: Boolean(taken["no-start"]),
  });
  process.stdout.write(`${SERVICE_NAME}: wrote ${done.unitFile} and ${done.envFile} (mode 0600)${taken["no-start"] ? "" : "; enabled and started"}\n`);
  return 0;
}

async function main(): Promise<number> {
  const [first, ...rest] = process.argv.slice(2);
  if (first === "install" || first === "uninstall" || first === "status") return service(first, rest);
  if (first === "--help" || first === "help") {
    process.stdout.write(USAGE + "\n");
    return 0;
  }
  const loaded = loadConfig(first === "run" ? rest : process.argv.slice(2), process.env);
  if (!loaded.ok) {
    process.stderr.write(`gridx-agent: ${loaded.error}\n${USAGE}\n`);
    return 2;
  }
  const config = loaded.config;
  const log = createLogger({ agent: config.name });
  let docker: DockerEngine;
  try {
    docker = new DockerEngine(engineAddress(process.env), { callTimeoutMs: config.dockerTimeoutS * 1000 });
    await docker.ping();
  } catch (err) {
    log.error("cannot reach the Docker engine; is dockerd running and is this user allowed to use it?", { err });
    return 1;
  }
  const http = {
    agent: (url: string) => networkOptions(url, process.env, config.caFile).agent,
    ca: networkOptions(config.url, {}, config.caFile).ca,
  };
  const slots = config.once ? 1 : config.slots;
  const instance = agentInstance(config.url, config.token, config.name);
  const egress = await EgressNetworks.start(docker, { instance, deny: config.egressDeny, off: config.noEgress }, log);
  const prefetch = config.once ? 0 : config.prefetch;
  const relay = await findRelayBusybox(config.relayBusybox);
  if (relay.path === null) log.warn(`jobs with ports are not taken here: ${relay.why}`);
  const caps = { ...(await detectCaps(docker, { cpus: config.cpus, memoryMb: config.memoryMb, labels: config.labels, egress: egress.available, ports: relay.path !== null })), prefetch };
  const buildLimits = { cpus: config.buildCpus, memoryMb: config.buildMemoryMb, pids: config.buildPids, timeoutMs: config.buildTimeoutS * 1000, maxImageBytes: config.buildMaxGb * 1024 ** 3 };
  const buildCgroup = await confineBuilds(docker, engineAddress(process.env), instance, buildLimits, log);
  const cgroups = await trackUsage(docker, engineAddress(process.env), instance, log);
  // One record for command jobs' pulls and builds' bases, so a build sees a pull made a moment ago.
  const loginPulls = new LoginPulls(loginPullsFile(config.stateDir));
  const runner = new DockerRunner(
    docker,
    {
      stateDir: config.stateDir,
      agentName: config.name,
      instance,
      images: { python: config.pythonImage, jupyter: config.jupyterImage },
      ...(relay.path && { relayBusybox: relay.path }),
      stopGraceS: config.stopGraceS,
      tmpfsMb: config.tmpfsMb,
      outputCapBytes: config.outputCapMb * 1024 * 1024,
      allowedImages: config.allowImages,
      pullTimeoutS: config.pullTimeoutS,
      // More could never all be in use at once: prefetched jobs hold theirs while they wait.
      prestart: Math.min(config.prestart, slots + prefetch),
      egress,
      loginPulls,
      cgroups,
      transfers: {
        cache: new InputCache(join(config.stateDir, "cache"), config.cacheMb * 1024 * 1024, http),
        artifacts: (jobId, attempt) => artifactApi(config.url, config.token, jobId, attempt, http),
        http,
        logCapBytes: config.logCapMb * 1024 * 1024,
      },
      repos: new RepoWorkspace(
        new GitCache({ root: join(config.stateDir, "git"), capBytes: config.gitCacheMb * 1024 * 1024, timeoutMs: config.gitTimeoutS * 1000, authTtlMs: config.gitAuthTtlS * 1000, allowLocal: config.allowLocalRepos, log }),
        new EnvImages(docker, {
          agentName: config.name,
          limits: buildLimits,
          cgroup: buildCgroup,
          cacheBytes: config.imageCacheGb * 1024 ** 3,
          usesFile: join(config.stateDir, "env-images.json"),
          egressNetwork: egress.buildNetwork,
          loginPulls,
          deny: config.egressDeny,
          log,
        }),
      ),
    },
    log,
  );
  const mib = 1024 * 1024;
  const agent = new Agent(
    {
      url: config.url,
      token: config.token,
      name: config.name,
      slots,
      version: AGENT_VERSION,
      caps,
      once: config.once,
      probes: config.probeSshTarget
        ? { target: config.probeSshTarget, keyFile: config.probeSshKey, allow: config.probeAllow, maxTimeoutS: config.probeTimeoutS, knownHostsFile: join(config.stateDir, "probe_known_hosts") }
        : null,
      logLimits: { ...DEFAULT_LOG_LIMITS, jobBytes: config.logCapMb * mib },
      connection: { wsOptions: networkOptions(connectUrl(config.url), process.env, config.caFile) },
      reach: new DockerReach(docker),
      // A --once agent's machine is thrown away after its job: nothing would start the new bundle.
      ...(!config.once && { upgrades: new BundleStore({ stateDir: config.stateDir, version: AGENT_VERSION, confirmS: config.upgradeConfirmS, http, log }) }),
    },
    runner,
    log,
  );
  // Before the agent takes a job: the lease then covers every container it starts.
  const warden = await startWarden(docker, engineAddress(process.env), { stateDir: config.stateDir, instance, agentName: config.name, leaseS: config.leaseS, onLapse: () => agent.stopAll("lease") }, log);
  // Only once the agent has closed, so no job is left: should closing fail, the lease expires and the warden stops what remains.
  const close = (graceMs: number) =>
    agent
      .close(graceMs)
      .then(() => warden?.close())
      .then(() => removeBuildCgroup(buildCgroup))
      .then(() => egress.close().catch((err: unknown) => log.warn("could not remove the egress networks; the next start removes them", { err })));
  const { fatal, finished, upgraded } = await agent.start();

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        log.warn("second signal: exiting now", { signal });
        resolve(130);
        return;
      }
      stopping = true;
      log.info("stopping: finishing running jobs first", { signal, grace_s: config.drainGraceS });
      void close(config.drainGraceS * 1000).then(() => resolve(0));
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    void finished.then(() => {
      log.info("--once: the job is done and reported; exiting");
      void close(0).then(() => resolve(0));
    });
    void upgraded.then((version) => {
      log.info("exiting for the service manager to start the installed bundle", { version, exit_code: RESTART_EXIT });
      void close(0).then(() => resolve(RESTART_EXIT));
    });
    void fatal.then((reason) => {
      log.error(reason);
      void close(0).then(() => resolve(3));
    });
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`gridx-agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
