import { EXIT } from "./exit-codes.ts";

/**
 * An error the CLI prints as `gridx: <message>` and exits with. Messages say what went wrong
 * and what to do about it.
 *
 * @example
 * throw new CliError("not logged in: run `gridx login URL`", EXIT.auth);
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.error,
  ) {
    super(message);
  }
}

/** A bad command line: exits 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

/** The control plane could not be reached: a transient failure a follower may retry. */
export class NetworkError extends CliError {}
