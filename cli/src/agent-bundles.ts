import { open, stat } from "node:fs/promises";
import { bundleVersionIn } from "../../protocol/upgrade.ts";
import { expectOk, send } from "../../agent/src/transfer/http.ts";
import { sha256File } from "../../agent/src/transfer/uploader.ts";
import type { ApiClient } from "./api.ts";
import { UsageError } from "./errors.ts";

const adminOnly = "publishing agent bundles needs the admin token (gridx login URL)";

async function readFirstLine(file: string): Promise<string> {
  const handle = await open(file);
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(200), 0, 200, 0);
    return buffer.subarray(0, bytesRead).toString("utf8").split("\n")[0] ?? "";
  } finally {
    await handle.close();
  }
}

/** Publishes an agent bundle file as `version`: its SHA-256 first (agents check it), one PUT, then the control plane checks what it stored. */
export async function publishBundle(api: ApiClient, file: string, version: string, log: (line: string) => void) {
  const st = await stat(file).catch(() => null);
  if (!st?.isFile()) throw new UsageError(`${file} is not a file: build the agent first (npm run build), or give --file`);
  const stamped = bundleVersionIn(await readFirstLine(file));
  if (stamped !== version) throw new UsageError(stamped ? `${file} is agent ${stamped}, not ${version}: publish it as ${stamped}, or build ${version} (scripts/build-agent.ts --version ${version})` : `${file} names no agent version on its first line: build it with npm run build or scripts/build-agent.ts`);
  log(`hashing ${file}…`);
  const sha256 = await sha256File(file);
  const created = await api.json(api.rpc.v1["agent-bundles"].$post({ json: { version, sha256, size: st.size } }), { forbidden: adminOnly, fields: [["version", "VERSION"], ["size", "--file"]] });
  log(`uploading ${st.size} bytes…`);
  (await expectOk(await send(created.upload.url, "PUT", { file, start: 0, end: st.size }, {}, {}), "upload")).resume();
  return api.json(api.rpc.v1["agent-bundles"][":version"].complete.$post({ param: { version } }), { forbidden: adminOnly });
}
