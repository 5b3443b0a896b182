import Docker from "dockerode";
import { Agent } from "./agent.ts";
import { detectCaps } from "./caps.ts";
import { loadConfig } from "./config.ts";
import { createLogger } from "./logger.ts";
import { connectUrl } from "./connection.ts";
import { networkOptions } from "./network.ts";
import { DockerRunner } from "./runner/docker-runner.ts";
import { DEFAULT_LOG_LIMITS } from "./runner/log-collector.ts";
import { AGENT_VERSION } from "./version.ts";

const USAGE = `usage: gridx-agent [run] --url URL [--name NAME] [--slots N] [--label k=v]... [--once]
       [--state-dir DIR] [--cpus N] [--memory-mb N] [--allow-image IMG]... [--stop-grace S]
       [--drain-grace S] [--tmpfs-mb N] [--output-cap-mb N] [--log-cap-mb N] [--ca-file PEM] [--config FILE]
       gridx-agent install --url URL --token TOKEN [options above] | uninstall | status
The token is best passed as GRIDX_AGENT_TOKEN. Every flag has an environment variable (GRIDX_URL,
GRIDX_SLOTS, ...) and a config-file key (/etc/gridx/agent.json); flags win over the environment,
the environment over the file. See the README for the full table.`;

async function main(): Promise<number> {
  const loaded = loadConfig(process.argv.slice(2), process.env);
  if (!loaded.ok) {
    process.stderr.write(`gridx-agent: ${loaded.error}\n${USAGE}\n`);
    return 2;
  }
  const config = loaded.config;
  const log = createLogger({ agent: config.name });
  const docker = new Docker();
  try {
    await docker.ping();
  } catch (err) {
    log.error("cannot reach the Docker engine; is dockerd running and is this user allowed to use it?", { err });
    return 1;
  }
  const caps = await detectCaps(docker, { cpus: config.cpus, memoryMb: config.memoryMb, labels: config.labels });
  const runner = new DockerRunner(
    docker,
    {
      stateDir: config.stateDir,
      agentName: config.name,
      images: { python: config.pythonImage },
      stopGraceS: config.stopGraceS,
      tmpfsMb: config.tmpfsMb,
      outputCapBytes: config.outputCapMb * 1024 * 1024,
      allowedImages: config.allowImages,
    },
    log,
  );
  const mib = 1024 * 1024;
  const agent = new Agent(
    {
      url: config.url,
      token: config.token,
      name: config.name,
      slots: config.once ? 1 : config.slots,
      version: AGENT_VERSION,
      caps,
      once: config.once,
      logLimits: { ...DEFAULT_LOG_LIMITS, jobBytes: config.logCapMb * mib },
      connection: { wsOptions: networkOptions(connectUrl(config.url), process.env, config.caFile) },
    },
    runner,
    log,
  );
  const { fatal, finished } = await agent.start();

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
      void agent.close(config.drainGraceS * 1000).then(() => resolve(0));
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    void finished.then(() => {
      log.info("--once: the job is done and reported; exiting");
      void agent.close(0).then(() => resolve(0));
    });
    void fatal.then((reason) => {
      log.error(reason);
      void agent.close(0).then(() => resolve(3));
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
