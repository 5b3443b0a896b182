import { readFileSync } from "node:fs";
import { dispatch, type Io } from "./cli.ts";
import { datasetCommands } from "./commands/datasets.ts";
import { gridCommands } from "./commands/grid.ts";
import { jobCommands } from "./commands/jobs.ts";
import { setupCommands } from "./commands/setup.ts";
import { CliError } from "./errors.ts";
import { EXIT } from "./exit-codes.ts";

/** Every command, in the order `gridx --help` lists them. */
export const COMMANDS = [...jobCommands, ...gridCommands, ...datasetCommands, ...setupCommands];

const version = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

const io: Io = {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  signals: process,
  exit: (code) => process.exit(code),
};

dispatch(COMMANDS, process.argv.slice(2), io, version).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`gridx: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : EXIT.error;
  },
);
