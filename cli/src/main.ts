import { parseArgs } from "node:util";
import { ApiClient, CliError } from "./api.ts";
import { downloadDataset, uploadDataset } from "./datasets.ts";

const USAGE = `usage: gridx <command> [options]

  gridx datasets upload FILE [--name NAME]     upload a file as a dataset (multipart, parallel, resumable)
  gridx datasets download ID [-o FILE]         download a dataset and check its sha256
  gridx datasets ls                            list datasets

Environment: GRIDX_URL (the control plane), GRIDX_TOKEN (an API or admin token).
Add --json for machine-readable output.
Exit codes: 0 ok, 1 failed, 2 bad usage.

Examples:
  gridx datasets upload ./train.parquet
  gridx datasets download ds_01abc -o train.parquet`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { name: { type: "string" }, output: { type: "string", short: "o" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  const [group, command, target] = positionals;
  if (values.help || !group) {
    process.stdout.write(USAGE + "\n");
    return values.help ? 0 : 2;
  }
  const print = (human: string, data: unknown) => process.stdout.write((values.json ? JSON.stringify(data) : human) + "\n");
  if (group === "datasets") {
    const api = ApiClient.fromEnv(process.env);
    if (command === "upload" && target) {
      const d = await uploadDataset(api, target, values.name);
      print(`${d.id}  ${d.name}  ${d.size} bytes  sha256 ${d.sha256}  ${d.status}`, d);
      return 0;
    }
    if (command === "download" && target) {
      const r = await downloadDataset(api, target, values.output);
      print(`${r.path}  sha256 ${r.sha256}  verified`, r);
      return 0;
    }
    if (command === "ls") {
      const { datasets } = await api.call<{ datasets: { id: string; name: string; size: number; status: string }[] }>("GET", "/v1/datasets");
      print(datasets.map((d) => `${d.id}  ${d.status.padEnd(9)}  ${String(d.size).padStart(12)}  ${d.name}`).join("\n"), datasets);
      return 0;
    }
  }
  throw new CliError(`unknown command: ${positionals.join(" ")}\n\n${USAGE}`, 2);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`gridx: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof CliError ? err.exitCode : 1);
  },
);
