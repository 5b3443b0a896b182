import { PassThrough } from "node:stream";
import { dispatch, type Io } from "../../cli/src/cli.ts";
import { COMMANDS } from "../../cli/src/registry.ts";

/** An Io whose output is collected and whose exit throws, for the CLI run in-process. */
export function fakeIo(env: Record<string, string> = {}) {
  const out = { stdout: "", stderr: "" };
  const io: Io = {
    stdout: { write: (t: string) => (out.stdout += t) },
    stderr: { write: (t: string) => (out.stderr += t) },
    stdin: new PassThrough(),
    env,
    signals: process,
    exit: (code) => {
      throw new Error(`exit ${code}`);
    },
  };
  return { io, out };
}

/** `gridx ARGV` in-process with `env`: its exit code and what it wrote. */
export async function runCli(argv: string[], env: Record<string, string>) {
  const { io, out } = fakeIo(env);
  const code = await dispatch(COMMANDS, argv, io, "1.0.0");
  return { code, ...out };
}
