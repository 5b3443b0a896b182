/**
 * A stand-in for an agent in the warden tests: a process of its own that starts a Warden and
 * renews its lease until it is killed. Its `kill -9` is the agent's death the warden must notice.
 * argv: stateDir instance leaseS
 */
import { DockerEngine, engineAddress } from "../../agent/src/docker/engine.ts";
import { createLogger } from "../../agent/src/logger.ts";
import { Warden } from "../../agent/src/runner/warden.ts";

const [stateDir, instance, leaseS] = process.argv.slice(2);
const address = engineAddress(process.env);
if (!("socketPath" in address)) throw new Error("the warden needs the engine's unix socket");
const warden = new Warden(new DockerEngine(address), { stateDir: stateDir!, instance: instance!, agentName: "lease-holder", socketPath: address.socketPath, leaseS: Number(leaseS) }, createLogger());
await warden.start();
process.stdout.write("renewing\n");
