import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { commandHelp, type Command } from "./cli.ts";
import { EXIT_CODES_HELP } from "./exit-codes.ts";
import { COMMANDS } from "./registry.ts";

const INTRO = `# The gridx CLI

\`gridx\` submits and follows jobs, manages projects, members and tokens, and moves datasets,
from a terminal or a script (\`npx gridx ...\` from the checkout, or \`npm link\`; Node ≥ 20).
This page is generated from the commands' own \`--help\` (\`node --import tsx cli/src/reference.ts\`
writes it; a test in test/cli/reference.test.ts holds it to the code).

## How it is built and run

\`npm install\` (its \`prepare\`: \`npm run build\`) bundles the CLI with esbuild into one CommonJS
file, \`cli/dist/gridx.cjs\` (not in git, like the agent's bundle), and \`cli/bin/gridx.cjs\` (what
\`npx gridx\`, \`npm link\` and \`npm run gridx\` run) loads it on plain Node, with no TypeScript
loader. CommonJS because a start is mostly module loading: an ES module's \`import "node:fs"\`
builds the module's ESM facade, evaluating every export (streams load with it), where
\`require\` does not. The commands that move bytes (\`datasets upload|download\`, \`artifacts
ls|get\`) load the transfer code (node:https, node:crypto, streams) when they run, so
\`gridx --help\` loads none of it (test/cli/bundle.test.ts holds both). \`npm run bench\` (section
cli) measures \`gridx --help\` against \`node -e 0\`, and \`gridx run\` against a bare \`docker run\`.
After changing cli/src, \`npm run build\` again; the e2e tests rebuild it themselves.

## Following jobs: pushed, not polled

\`gridx run\` and \`gridx logs -f\` read the job's log stream (\`GET /v1/jobs/:id/logs?follow=1\`):
each line as the agent sends it, then one \`end\` event whose status and exit code \`run\` exits
with; \`run\` reads the job itself only for \`--json\` or to say why a job failed without an exit
code. \`gridx submit --wait\` follows the events stream (\`GET /v1/events?job=ID\`) to the job's
terminal event, reading the job once when the stream opens (it may have ended before) and once
at the end for its summary.

Both streams resume by cursor, the id of the last event seen (sent as \`after\`): a dropped
connection is tried again after 0.5 s, 1 s, 1.5 s, ... (5 in a row without an event is an
error), and the server's \`resume\` event, sent when a stream reaches its maximum duration
(FOLLOW_MAX_S), reconnects at once from the cursor it names. Across either, no line or event is
lost or repeated. An \`error\` event (the token was revoked or lost the project) ends the command
with exit 3.

## Where it talks to, as whom, in which project

| setting | from, first found wins |
| --- | --- |
| control plane URL | \`GRIDX_URL\`, else the URL \`gridx login URL\` saved |
| token | \`GRIDX_TOKEN\`, else the token \`gridx login\` saved (an API token or the admin token) |
| project | the command's \`--project P\`, else \`GRIDX_PROJECT\`, else \`gridx config set project P\`, else none: submits and uploads go to \`default\`, lists show every project you can read (\`-A\` does that whatever the default) |

The config file is \`$XDG_CONFIG_HOME/gridx/config.json\` (\`~/.config/gridx/config.json\`), mode
0600; \`gridx config show\` says what is in use and where each value comes from.

## Projects, members and tokens

Roles are per project: \`owner\` manages members, secrets and quotas; \`member\` submits, cancels,
uploads and reads; \`viewer\` reads. The admin token creates users and projects and issues any
token (the model: [tenancy.md](tenancy.md)). A new team, from the admin token:

\`\`\`sh
gridx users create ada
gridx projects create ml --max-running 8 --max-gpus 4 --max-dataset-bytes 500g
gridx members add ml ada --role owner
gridx tokens create ada-laptop --user ada --expires-in 90d     # printed once; give it to ada
\`\`\`

Then, as ada (\`gridx login URL\` with that token):

\`\`\`sh
gridx whoami                                   # ada, owner of ml
gridx config set project ml                    # the default for submit, run, list, datasets
gridx submit --name "lr sweep" --tag exp=3 --tag lr=0.1 train.py
gridx list --tag exp=3 --submitted-by ada
gridx projects set ml --max-queued 1000        # the other quotas stay as they are
gridx members add ml grace --role viewer
gridx tokens ls; gridx tokens revoke tok_...   # its next request gets a 401 (exit 3)
\`\`\`

\`PATCH /v1/projects/:project\` replaces a project's quotas as a whole, so \`gridx projects set\`
reads the current quotas and sends them back with the changes (\`none\` removes one); a change
someone else makes between the two requests is overwritten.

## Errors

An error is printed as \`gridx: MESSAGE\`, where MESSAGE is the server's (\`error.message\`) with
what to do next: a 400 names the flag that set the refused field, a 401 says to log in again,
a 403 the role needed, and a 429 or 413 from a project quota the quota, its use, and the
\`gridx projects set\` flag that raises it; a rate limit's 429 says when to retry (\`Retry-After\`).

\`\`\`text
${EXIT_CODES_HELP}
\`\`\`
`;

/** One command's `--help`, less the exit codes the reference shows once. */
const section = (c: Command) => `### gridx ${c.name}\n\n\`\`\`text\n${commandHelp(c).split("\n\nExit codes:")[0]!.trimEnd()}\n\`\`\`\n`;

/** docs/cli.md: the intro, then every command's help, grouped as `gridx --help` lists them. */
export function cliReference(commands: Command[] = COMMANDS): string {
  const groups = [...new Set(commands.map((c) => c.group))];
  const body = groups.map((g) => `\n## ${g}\n\n${commands.filter((c) => c.group === g).map(section).join("\n")}`).join("");
  return `${INTRO}${body}`.trimEnd() + "\n";
}

export const REFERENCE_PATH = fileURLToPath(new URL("../../docs/cli.md", import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url)) writeFileSync(REFERENCE_PATH, cliReference());
