#!/usr/bin/env node
// Stands in for wrangler in setup-cloudflare.test.ts: Cloudflare's API is not reachable here.
// Its account lives in FAKE_WRANGLER_STATE (JSON); every call is appended to its `calls`.
import { readFileSync, writeFileSync } from "node:fs";

const file = process.env.FAKE_WRANGLER_STATE;
const state = JSON.parse(readFileSync(file, "utf8"));
const args = process.argv.slice(2);
state.calls.push(args.join(" "));
const save = () => writeFileSync(file, JSON.stringify(state));
const cmd = args.slice(0, 2).join(" ");
process.stderr.write("▲ [WARNING] Processing wrangler.toml configuration\n");
let code = 0;
if (args[0] === "whoami") {
  if (!state.loggedIn) code = 1;
  else process.stdout.write(JSON.stringify({ loggedIn: true, accounts: [{ id: state.account, name: "Lab" }] }));
} else if (cmd === "d1 list") process.stdout.write(JSON.stringify(state.databases));
else if (cmd === "d1 create") {
  const uuid = "5a1b2c3d-0000-4000-8000-00000000000" + state.databases.length;
  state.databases.push({ name: args[2], uuid });
  process.stdout.write(`✅ Successfully created DB '${args[2]}'\n\n[[d1_databases]]\nbinding = "DB"\ndatabase_name = "${args[2]}"\ndatabase_id = "${uuid}"\n`);
} else if (cmd === "r2 bucket" && args[2] === "list") process.stdout.write(state.buckets.map((b) => `name:           ${b}\ncreation_date:  2026-12-01T00:00:00.000Z\n`).join("\n"));
else if (cmd === "r2 bucket" && args[2] === "create") state.buckets.push(args[3]);
else if (cmd === "secret list") {
  if (!state.deployed) {
    process.stderr.write("This Worker does not exist on your account. [code: 10007]\n");
    code = 1;
  } else process.stdout.write(JSON.stringify(Object.keys(state.secrets).map((name) => ({ name, type: "secret_text" }))));
} else if (cmd === "d1 migrations") state.migrated = true;
else if (args[0] === "deploy") {
  const i = args.indexOf("--secrets-file");
  if (i >= 0)
    for (const m of readFileSync(args[i + 1], "utf8").matchAll(/^([A-Z0-9_]+)="([^"]*)"$/gm)) state.secrets[m[1]] = m[2];
  state.deployed = true;
  process.stdout.write("Uploaded gridx (3.21 sec)\nDeployed gridx triggers (0.52 sec)\n  https://gridx.lab.workers.dev\n  schedule: */30 * * * *\n");
} else {
  process.stderr.write(`fake wrangler: unexpected ${args.join(" ")}\n`);
  code = 2;
}
save();
process.exit(code);
