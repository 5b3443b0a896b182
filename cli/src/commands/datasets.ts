import { command } from "../cli.ts";
// The transfer code (node:http, node:https, node:crypto, streams) loads only for the commands that move bytes: every other start stays fast.
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { ago, bytes, table } from "../format.ts";

export const datasetsUpload = command({
  name: "datasets upload",
  group: "Datasets",
  summary: "upload a file as a dataset (multipart, parallel, resumable)",
  usage: ["datasets upload FILE [--name NAME] [--project P]"],
  options: { name: { type: "string" }, project: { type: "string" } },
  optionsHelp: `  --name NAME                  the dataset's name (default: the file's name)
  --project P                  the project that owns it; only its jobs mount it (default: GRIDX_PROJECT,
                               else the saved \`gridx config set project P\`, else default)`,
  notes: "An interrupted upload resumes when run again on the same file: only the missing parts are sent.",
  examples: ["gridx datasets upload ./train.parquet", "gridx datasets upload --project lab ./train.parquet", "gridx run --input $(gridx datasets upload data.bin --json | jq -r .id):data.bin job.py"],
  async run({ values, positionals }, ctx) {
    const [file] = positionals;
    if (!file || positionals.length > 1) throw new UsageError("give one file: gridx datasets upload FILE");
    const { uploadDataset } = await import("../datasets.ts");
    const d = await uploadDataset(ctx.api(), file, values.name, (line) => ctx.io.stderr.write(line + "\n"), ctx.project(values.project));
    ctx.print(`${d.id}  ${d.name}  ${d.size} bytes  sha256 ${d.sha256}  ${d.status}  project ${d.project}`, d);
    return EXIT.ok;
  },
});

export const datasetsDownload = command({
  name: "datasets download",
  group: "Datasets",
  summary: "download a dataset, resuming a partial file, and check its sha256",
  usage: ["datasets download ID [-o FILE]"],
  options: { output: { type: "string", short: "o" } },
  optionsHelp: "  -o, --output FILE            where to write it (default: the dataset's name)",
  examples: ["gridx datasets download ds_01abc -o train.parquet"],
  async run({ values, positionals }, ctx) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError("give one dataset id: gridx datasets download ID");
    const { downloadDataset } = await import("../datasets.ts");
    const r = await downloadDataset(ctx.api(), id, values.output);
    ctx.print(`${r.path}  sha256 ${r.sha256}  verified`, r);
    return EXIT.ok;
  },
});

export const datasetsLs = command({
  name: "datasets ls",
  group: "Datasets",
  summary: "list datasets, newest first",
  usage: ["datasets ls [--project P | -A]"],
  options: { project: { type: "string" }, "all-projects": { type: "boolean", short: "A" } },
  optionsHelp: `  --project P                  only this project (default: GRIDX_PROJECT, else the saved
                               \`gridx config set project P\`, else every project you can read)
  -A, --all-projects           every project you can read, whatever the default`,
  examples: ["gridx datasets ls", "gridx datasets ls --project lab"],
  async run({ values, positionals }, ctx) {
    if (positionals.length) throw new UsageError("gridx datasets ls takes no arguments");
    if (values.project && values["all-projects"]) throw new UsageError("--project and --all-projects do not go together");
    const project = values["all-projects"] ? undefined : ctx.project(values.project);
    const api = ctx.api();
    const { datasets } = await api.json(api.rpc.v1.datasets.$get({ query: project ? { project } : {} }));
    const rows = datasets.map((d) => [d.id, d.status, d.project, bytes(d.size), ago(d.created_at), d.name]);
    ctx.print(rows.length ? table(["ID", "STATUS", "PROJECT", "SIZE", "CREATED", "NAME"], rows) : "no datasets", datasets);
    return EXIT.ok;
  },
});

export const datasetCommands = [datasetsUpload, datasetsDownload, datasetsLs];
