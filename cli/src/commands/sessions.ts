import type { JobRequest } from "../../../protocol/index.ts";
import { integer } from "../args.ts";
import { command, type Context } from "../cli.ts";
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import type { ExecIo, ExecRequest } from "../exec.ts";
import { commonFields } from "../job-request.ts";
import { createLink, openInBrowser, waitForPort, waitForRunning } from "../ports.ts";

/** The port a jupyter job serves (protocol/job.ts's JUPYTER_PORT, without loading zod). */
const JUPYTER_PORT = 8888;
/** How long Jupyter has to answer once its job runs (an image pulled cold takes its time before `running`, not after). */
export const JUPYTER_START_S = 120;

const NO_OPEN_HELP = "  --no-open                    print the link only (it opens in a browser when stdout is a terminal)";

/** Prints a fresh one-time link to a job's port and opens it, unless told not to. */
async function printLink(ctx: Context, id: string, port: number, open: boolean): Promise<number> {
  const link = await createLink(ctx.api(), id, port);
  ctx.print(link.url, { job_id: id, port, ...link });
  ctx.note(`[gridx: the link works once, until ${link.expires_at}; a new one: gridx open ${id} ${port}]`);
  if (open) await openInBrowser(ctx.io, link.url);
  return EXIT.ok;
}

export const jupyter = command({
  name: "jupyter",
  group: "Jobs",
  summary: "start a Jupyter Notebook as a job and open it in the browser",
  usage: ["jupyter [--gpus N] [--input DATASET:PATH]... [--image IMG] [--lab] [--pool P] [--project P] [--timeout DUR] [--no-open]"],
  options: {
    gpus: { type: "string" },
    input: { type: "string", multiple: true },
    image: { type: "string" },
    lab: { type: "boolean" },
    pool: { type: "string" },
    project: { type: "string" },
    timeout: { type: "string" },
    "no-open": { type: "boolean" },
  },
  optionsHelp: `  --gpus N                     GPUs to reserve (default 0)
  --input DATASET:PATH         mount a dataset read-only at /work/input/PATH (repeat)
  --image IMG                  an image with jupyter in it (default: gridx/jupyter, the classic Notebook)
  --lab                        JupyterLab instead of the Notebook; the image must have it
  --pool NAME                  the pool to run in (default: default)
  --project P                  the job's project (default: GRIDX_PROJECT, else the saved default)
  --timeout DUR                how long the session may run: 90m, 8h (default 1h)
${NO_OPEN_HELP}`,
  notes: `Submits a jupyter job, waits until it runs and Jupyter answers (at most ${JUPYTER_START_S} s), then prints a
one-time link to it. Notebooks are saved in /work/output, so they become the job's artifacts when
it ends: gridx cancel ID ends the session (Ctrl-C while waiting leaves it running). The link signs the browser in for the session; anyone
who may read the job's project can make another with gridx open ID ${JUPYTER_PORT}.`,
  examples: ["gridx jupyter", "gridx jupyter --pool gpu --gpus 1 --timeout 8h --input ds_01jd2x7k8m:data", "URL=$(gridx jupyter --no-open)"],
  async run({ values, positionals }, ctx) {
    if (positionals.length) throw new UsageError(`gridx jupyter takes no arguments (got ${positionals.join(" ")})`);
    const project = ctx.project(values.project);
    const body: JobRequest = {
      kind: "jupyter",
      jupyter: { ...(values.image !== undefined ? { image: values.image } : {}), ...(values.lab ? { lab: true } : {}) },
      ...commonFields({ gpus: values.gpus, input: values.input, pool: values.pool, timeout: values.timeout, ...(project ? { project } : {}) }, { env: ctx.io.env, readScript: () => "" }),
    };
    const api = ctx.api();
    const job = await api.json(api.rpc.v1.jobs.$post({ json: body, header: {} }), { fields: [["jupyter.image", "--image"]] });
    ctx.note(`[gridx: job ${job.id} ${job.status} in pool ${job.pool} (project ${job.project}); waiting for Jupyter to start]`);
    await waitForRunning(api, job.id);
    await waitForPort(api, job.id, JUPYTER_PORT, "api", { timeoutS: JUPYTER_START_S });
    return printLink(ctx, job.id, JUPYTER_PORT, !values["no-open"]);
  },
});

export const open = command({
  name: "open",
  group: "Jobs",
  summary: "print a one-time link to a running job's port, and open it in the browser",
  usage: ["open ID PORT [--no-open]"],
  options: { "no-open": { type: "boolean" } },
  optionsHelp: NO_OPEN_HELP,
  notes: "The port must be one the job declares (spec.ports; a jupyter job's is 8888). The link is good\nfor one use within a minute; it signs that browser in to the port until the session idles out.",
  examples: ["gridx open j_01jd2x7k8m 8888", "gridx open --no-open j_01jd2x7k8m 6006"],
  async run({ values, positionals }, ctx) {
    const [id, rawPort] = positionals;
    if (!id || !rawPort || positionals.length > 2) throw new UsageError("give the job id and the port: gridx open ID PORT");
    return printLink(ctx, id, integer("PORT", rawPort, 1, 65535), !values["no-open"]);
  },
});

/** The shell `gridx shell` starts: bash where the image has it, else sh. */
export const SHELL_ARGV = ["/bin/sh", "-c", "command -v bash >/dev/null && exec bash || exec sh"];

/** The exec's streams: the command's own, with the local terminal when stdin and stdout are one. */
function execIo(ctx: Context): ExecIo {
  const { stdin, stdout, stderr, signals } = ctx.io;
  const term = stdout as { columns?: number; rows?: number };
  const terminal: ExecIo["terminal"] =
    stdin.isTTY && stdout.isTTY
      ? {
          size: () => ({ cols: term.columns ?? 80, rows: term.rows ?? 24 }),
          onResize: (listener) => {
            signals.on("SIGWINCH", listener);
            return () => signals.off("SIGWINCH", listener);
          },
        }
      : undefined;
  return { stdin, stdout, stderr, ...(terminal ? { terminal } : {}) };
}

async function execIn(ctx: Context, req: ExecRequest): Promise<number> {
  const { runExec } = await import("../exec.ts");
  return runExec(ctx.api(), req, execIo(ctx));
}

const EXEC_NOTES = `The process runs in the job's container as the job's user, within its limits; the pool's
sandbox policy must allow exec, and it needs the member role in the job's project (each exec is
audited). gridx exits with the process's exit code (125 when it has none: killed).`;

export const exec = command({
  name: "exec",
  group: "Jobs",
  summary: "run a command in a running job's container (like docker exec)",
  usage: ["exec ID [-t] -- COMMAND [ARGS...]"],
  options: { tty: { type: "boolean", short: "t" } },
  optionsHelp: "  -t, --tty                    give the command a terminal (for interactive programs)",
  notes: `stdin goes to the command; its stdout and stderr come back as they are. ${EXEC_NOTES}`,
  examples: ["gridx exec j_01jd2x7k8m -- nvidia-smi", "gridx exec j_01jd2x7k8m -- ls -l /work/output", "gridx exec -t j_01jd2x7k8m -- python3", "tar c data | gridx exec j_01jd2x7k8m -- tar x -C /tmp"],
  async run({ values, positionals }, ctx) {
    const [id, ...argv] = positionals;
    if (!id || !argv.length) throw new UsageError("give the job id and the command: gridx exec ID -- COMMAND [ARGS...]");
    return execIn(ctx, { job: id, argv, tty: values.tty === true });
  },
});

export const shell = command({
  name: "shell",
  group: "Jobs",
  summary: "open an interactive shell in a running job's container (bash, else sh)",
  usage: ["shell ID"],
  options: {},
  optionsHelp: "",
  notes: `The shell gets a terminal that follows this one's size; exit (or Ctrl-D) ends it. ${EXEC_NOTES}`,
  examples: ["gridx shell j_01jd2x7k8m"],
  async run({ positionals }, ctx) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError("give one job id: gridx shell ID");
    return execIn(ctx, { job: id, argv: SHELL_ARGV, tty: true });
  },
});

export const sessionCommands = [jupyter, open, exec, shell];
