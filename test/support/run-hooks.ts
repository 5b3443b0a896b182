import type { RunHooks } from "../../agent/src/runner/runner.ts";
import type { ResolvedCommits } from "../../protocol/index.ts";

/** Run hooks that keep what a run reported: stdout and stderr as text, build and system lines, and what each start said it resolved. */
export function recorder() {
  const seen = { stdout: "", stderr: "", build: [] as string[], system: [] as string[], started: [] as (ResolvedCommits | undefined)[] };
  const hooks: RunHooks = {
    started: (resolved) => void seen.started.push(resolved),
    output: (stream, chunk) => {
      if (stream === "stdout") seen.stdout += chunk.toString();
      else if (stream === "stderr") seen.stderr += chunk.toString();
      else if (stream === "build") seen.build.push(...chunk.toString().split("\n").filter(Boolean));
    },
    system: (text) => void seen.system.push(text),
    congested: () => false,
  };
  return { seen, hooks };
}
