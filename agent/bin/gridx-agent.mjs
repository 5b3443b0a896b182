#!/usr/bin/env -S node --max-semi-space-size=1
// The flags are AGENT_NODE_FLAGS in agent/src/service.ts; a test keeps the two alike.
// The installed entry point, what the service runs: the bundle an upgrade installed in the
// state dir (bundle-choice.mjs decides which, and rolls back one that never connects), else
// the bundled agent beside it (`npm run build` makes it; `npm install` runs that).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { pathToFileURL } from "node:url";
import { atStart, RESTART_EXIT, runsAgent, stateDirOf, stateFile, trialEnded } from "./bundle-choice.mjs";

const shipped = new URL("../dist/gridx-agent.mjs", import.meta.url);
const argv = process.argv.slice(2);
const readJson = (file) => {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return null;
  }
};

let chosen = null;
if (runsAgent(argv)) {
  const file = stateFile(stateDirOf(argv, process.env, readJson));
  const write = (state) => {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2));
    renameSync(`${file}.tmp`, file);
  };
  const before = readJson(file);
  // The package this launcher came in (npm, the image) names the shipped bundle's version.
  const shippedVersion = readJson(new URL("../../package.json", import.meta.url))?.version;
  let start = atStart(before, Date.now(), shippedVersion);
  try {
    if (before && JSON.stringify(before) !== JSON.stringify(start.state)) write(start.state);
  } catch (err) {
    // A full or read-only disk must not keep the agent from starting: no trial that cannot be recorded.
    process.stderr.write(`gridx-agent: cannot write ${file} (${err.message}); running the current bundle, trying nothing new\n`);
    start = { path: before?.current?.path ?? null, trial: null, state: before };
  }
  if (before?.current && !start.state.current) process.stderr.write(`gridx-agent: ${shippedVersion} was installed over the upgraded bundle ${before.current.version}; running ${shippedVersion}\n`);
  chosen = start.path;
  if (start.trial) {
    const { version, confirm_s } = start.trial;
    // Rolls the trial back if it is still pending; its service manager then starts the current bundle.
    const end = (why) => {
      const next = trialEnded(readJson(file), version, why, Date.now());
      if (next) {
        try {
          write(next);
        } catch {
          // Unwritten, the next start finds the trial started and unconfirmed, and rolls it back then.
        }
        process.stderr.write(`gridx-agent: rolled back ${version}: ${why}\n`);
      }
      return next !== null;
    };
    process.on("exit", (code) => {
      if (end(`the new agent ${version} exited with status ${code} before its hello was accepted`)) process.exitCode = RESTART_EXIT;
    });
    setTimeout(() => {
      if (end(`the new agent ${version} had no hello accepted within ${confirm_s} s`)) process.exit(RESTART_EXIT);
    }, confirm_s * 1000).unref();
  }
  if (chosen && !existsSync(chosen)) {
    process.stderr.write(`gridx-agent: the installed bundle ${chosen} is missing; running the one shipped here\n`);
    chosen = null;
  }
}
if (!chosen && !existsSync(shipped)) {
  process.stderr.write("gridx-agent: agent/dist/gridx-agent.mjs is missing; run `npm run build` in the gridx folder\n");
  process.exit(1);
}
await import(chosen ? pathToFileURL(chosen).href : shipped.href);
