import { dispatch, type Io } from "./cli.ts";
import { CliError } from "./errors.ts";
import { EXIT } from "./exit-codes.ts";
import { COMMANDS } from "./registry.ts";

/** package.json's version, written in by scripts/build-cli.ts: the CLI runs only as its bundle. */
declare const GRIDX_VERSION: string;

const io: Io = {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  signals: process,
  exit: (code) => process.exit(code),
};

// A reader that goes away (`gridx logs ID -f | head`) ends the command, quietly.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(EXIT.ok);
  throw err;
});

dispatch(COMMANDS, process.argv.slice(2), io, GRIDX_VERSION).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`gridx: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : EXIT.error;
  },
);
