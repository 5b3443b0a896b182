import type { ParseArgsOptionsConfig } from "node:util";
import { ApiClient } from "./api.ts";
import { parseFlags, splitAtProgram } from "./args.ts";
import { resolveConfig, resolveProject } from "./config.ts";
import { UsageError } from "./errors.ts";
import { EXIT, EXIT_CODES_HELP } from "./exit-codes.ts";

/** Where a command reads and writes; the real process's, or a test's. */
export interface Io {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown; isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  env: Record<string, string | undefined>;
  /** SIGINT and SIGTERM arrive here (`run` cancels its job on them). */
  signals: Pick<NodeJS.Process, "on" | "off">;
  exit: (code: number) => never;
}

export interface Context {
  io: Io;
  json: boolean;
  /** The API client for the configured control plane (`gridx login`, or GRIDX_URL / GRIDX_TOKEN). */
  api(): ApiClient;
  /** The project to act in: the --project flag, else GRIDX_PROJECT, else the saved default; undefined is the server's (`default`). */
  project(flag: string | undefined): string | undefined;
  /** Prints `--json` data as JSON, or the human text. */
  print(human: string, data: unknown): void;
  /** A note for the user on stderr (not in `--json` mode). */
  note(text: string): void;
}

const GROUPS = ["Jobs", "Projects", "Access", "Grid", "Datasets", "Setup"] as const;

const GLOBAL_FLAGS = {
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsOptionsConfig;

type Values<O extends ParseArgsOptionsConfig> = {
  [K in keyof O]?: O[K] extends { type: "boolean" } ? boolean : O[K] extends { multiple: true } ? string[] : string;
};

export interface Command<O extends ParseArgsOptionsConfig = ParseArgsOptionsConfig> {
  /** One or two words: `status`, `artifacts get`. */
  name: string;
  group: (typeof GROUPS)[number];
  summary: string;
  /** Usage lines, each after `gridx `. */
  usage: string[];
  options: O;
  /** The options section of `--help`, one line per flag. */
  optionsHelp: string;
  /** Prose after the options: what goes where, what Ctrl-C does. */
  notes?: string;
  examples: string[];
  /** Everything from the first argument that is not a flag belongs to the job (submit, run). */
  program?: boolean;
  /** Whether `--help` shows the job exit codes (run, submit). */
  jobExitCodes?: boolean;
  run(args: { values: Values<O>; positionals: string[] }, ctx: Context): Promise<number>;
}

/** Declares a command with its flags' types inferred. */
export const command = <const O extends ParseArgsOptionsConfig>(c: Command<O>): Command => c as unknown as Command;

export function commandHelp(c: Command): string {
  const usage = c.usage.map((u, i) => `${i === 0 ? "Usage: " : "       "}gridx ${u}`).join("\n");
  const options = `${c.optionsHelp ? c.optionsHelp + "\n" : ""}  --json                       machine-readable output on stdout
  -h, --help                   this help`;
  const codes = c.jobExitCodes ? EXIT_CODES_HELP : EXIT_CODES_HELP.split("\n  run and submit --wait")[0]!;
  const notes = c.notes ? `\n\n${c.notes}` : "";
  return `gridx ${c.name} — ${c.summary}\n\n${usage}\n\nOptions:\n${options}${notes}\n\nExamples:\n${c.examples.map((e) => `  ${e}`).join("\n")}\n\n${codes}\n`;
}

export function mainHelp(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  const sections = GROUPS.map((g) => `${g}:\n${commands.filter((c) => c.group === g).map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join("\n")}`);
  return `gridx — run jobs on a gridx grid from the command line

Usage: gridx COMMAND [options]     (gridx COMMAND --help for a command's options and examples)

${sections.join("\n\n")}

Every command takes --json (machine-readable output on stdout) and --help.
\`gridx login URL\` saves the control plane's URL and a token in $XDG_CONFIG_HOME/gridx/config.json
(~/.config/gridx/config.json), readable by you only; GRIDX_URL and GRIDX_TOKEN override it.
\`gridx config set project P\` makes P the project of jobs and datasets without --project
(GRIDX_PROJECT overrides it; the flag wins over both).

Examples:
  gridx login https://gridx.example.com
  gridx run train.py --epochs 3            # follow the logs, exit with the job's exit code
  gridx submit --image gridx/python:latest -- python3 -c 'print(1)'
  gridx list --status running --tag sweep=lr
  gridx projects                           # your projects, your role, quotas and usage
  gridx logs j_01jd2x7k8m -f

${EXIT_CODES_HELP}
`;
}

/** The command the words name; the longest name wins, so `projects show` is not `projects` with an argument. */
function findCommand(commands: Command[], words: string[]): { command: Command; rest: string[] } | undefined {
  const matches = commands.filter((c) => c.name.split(" ").every((p, i) => words[i] === p));
  const longest = matches.sort((a, b) => b.name.length - a.name.length)[0];
  return longest && { command: longest, rest: words.slice(longest.name.split(" ").length) };
}

/**
 * Runs one command line; resolves with the exit code. Usage errors and `CliError`s are left
 * to the caller to print.
 */
export async function dispatch(commands: Command[], argv: string[], io: Io, version: string): Promise<number> {
  const [first, ...others] = argv;
  if (!first || first === "-h" || first === "--help" || first === "help") {
    const topic = first === "help" && others.length ? findCommand(commands, others) : undefined;
    io.stdout.write(topic ? commandHelp(topic.command) : mainHelp(commands));
    return first ? EXIT.ok : EXIT.usage;
  }
  if (first === "--version" || first === "-v") {
    io.stdout.write(`gridx ${version}\n`);
    return EXIT.ok;
  }
  const found = findCommand(commands, argv);
  if (!found) {
    const group = commands.filter((c) => c.name.startsWith(`${first} `));
    if (group.length) {
      throw new UsageError(`\`gridx ${first}\` needs one of: ${group.map((c) => c.name.split(" ")[1]).join(", ")}; see \`gridx ${group[0]!.name} --help\``);
    }
    throw new UsageError(`unknown command "${first}"; see \`gridx --help\``);
  }
  const { command: c, rest } = found;
  const options = { ...c.options, ...GLOBAL_FLAGS };
  const { flags, program } = c.program ? splitAtProgram(rest, options) : { flags: rest, program: [] };
  const parsed = parseFlags(c.name, flags, options);
  const values = parsed.values as Values<typeof options>;
  if (values.help) {
    io.stdout.write(commandHelp(c));
    return EXIT.ok;
  }
  const json = values.json === true;
  let api: ApiClient | undefined;
  const ctx: Context = {
    io,
    json,
    api: () => (api ??= ApiClient.fromConfig(resolveConfig(io.env))),
    project: (flag) => resolveProject(flag, io.env),
    print: (human, data) => io.stdout.write((json ? JSON.stringify(data, null, 2) : human) + "\n"),
    note: (text) => {
      if (!json) io.stderr.write(text + "\n");
    },
  };
  return c.run({ values, positionals: [...parsed.positionals, ...program] }, ctx);
}
