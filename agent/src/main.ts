import Docker from "dockerode";
import { Agent } from "./agent.ts";
import { detectCaps } from "./caps.ts";
import { loadConfig } from "./config.ts";
import { createLogger } from "./logger.ts";
import { DockerRunner } from "./runner/docker-runner.ts";
import { AGENT_VERSION } from "./version.ts";

const USAGE = `usage: gridx-agent --url URL --token TOKEN [--name NAME] [--slots N] [--label k=v]...
       [--state-dir DIR] [--cpus N] [--memory-mb N] [--stop-grace S] [--drain-grace S]
environment: GRIDX_URL, GRIDX_AGENT_TOKEN, GRIDX_AGENT_NAME, GRIDX_SLOTS, GRIDX_LABELS (k=v,k=v), GRIDX_STATE_DIR`;

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
    { stateDir: config.stateDir, agentName: config.name, images: { python: config.pythonImage }, stopGraceS: config.stopGraceS, tmpfsMb: config.tmpfsMb },
    log,
  );
  const agent = new Agent({ url: config.url, token: config.token, name: config.name, slots: config.slots, version: AGENT_VERSION, caps }, runner, log);
  const { fatal } = await agent.start();

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
