/**
 * `npm start`: a grid of one on this machine. The control plane runs on `wrangler dev` and
 * one local agent joins it exactly as a remote machine would, with an agent token.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureRunnerImages, issueAgentToken, LOCAL_S3_SECRETS, newSecretsKey, ROOT, runCommand, startAgent, startControlPlane } from "./local-grid.ts";

const DEV_VARS = join(ROOT, ".dev.vars");

/**
 * Local secrets live in .dev.vars (git-ignored): a random admin token and project-secrets key
 * on a fresh clone, and the local R2 keys. Returns the admin token.
 */
function ensureDevVars(): string {
  let text = existsSync(DEV_VARS) ? readFileSync(DEV_VARS, "utf8") : "";
  const read = (key: string) => new RegExp(`^${key}\\s*=\\s*"?([^"\\n]+)"?`, "m").exec(text)?.[1];
  const wanted: Record<string, string> = { GRIDX_ADMIN_TOKEN: "gxadmin_" + randomBytes(24).toString("base64url"), SECRETS_KEY: newSecretsKey(), ...LOCAL_S3_SECRETS };
  for (const [key, value] of Object.entries(wanted)) if (!read(key)) text += `${key}="${value}"\n`;
  writeFileSync(DEV_VARS, text, { mode: 0o600 });
  return read("GRIDX_ADMIN_TOKEN")!;
}

async function main() {
  try {
    await runCommand("docker", ["info"]);
  } catch {
    console.error("gridx: the Docker engine is not reachable. Start dockerd (or Docker Desktop) and run `npm start` again.");
    process.exit(1);
  }
  console.log("gridx: checking runner images (the first build takes a minute or two)…");
  await ensureRunnerImages();
  const token = ensureDevVars();
  const port = Number(process.env.PORT ?? 8787);
  console.log("gridx: starting the control plane on wrangler dev…");
  const cp = await startControlPlane({ port, adminToken: token, secretsFile: DEV_VARS });
  const agentToken = await issueAgentToken(cp, "local");
  const agent = startAgent({ url: cp.url, token: agentToken, name: process.env.GRIDX_AGENT_NAME ?? "local", stateDir: join(ROOT, ".gridx", "agent"), slots: Number(process.env.GRIDX_SLOTS ?? 2), inheritOutput: true });

  console.log(`
gridx is running.
  control plane  ${cp.url}
  admin token    ${token}   (in .dev.vars)
  local agent    "local", pool "default"

Try it:
  curl -s -X POST ${cp.url}/v1/jobs -H "authorization: Bearer ${token}" \\
       -H 'content-type: application/json' -d '{"kind":"python","python":{"script":"print(6*7)"}}'
  curl -s ${cp.url}/v1/jobs/<id> -H "authorization: Bearer ${token}"

Ctrl-C stops the agent and the control plane.
`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log("\ngridx: stopping…");
    await agent.stop("SIGTERM");
    await cp.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
  cp.process.on("exit", (code) => {
    if (!stopping) {
      console.error(`gridx: the control plane exited (${code}):\n${cp.output().slice(-4000)}`);
      void agent.stop("SIGTERM").then(() => process.exit(1));
    }
  });
  agent.process.on("exit", (code) => {
    if (!stopping) console.error(`gridx: the local agent exited (${code}); the control plane keeps running`);
  });
}

main().catch((err: unknown) => {
  console.error(`gridx: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
