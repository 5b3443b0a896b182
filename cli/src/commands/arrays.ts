import type { ApiClient } from "../api.ts";
import { command, type Context } from "../cli.ts";
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { ago, keyValues } from "../format.ts";

const notFound = "an array's id (a_…) is what gridx submit --array printed; gridx status shows a task's";

type ArraySummary = Awaited<ReturnType<typeof getArray>>;

function getArray(api: ApiClient, id: string) {
  return api.json(api.rpc.v1.arrays[":id"].$get({ param: { id } }), { notFound });
}

/** Failed indices shown before `and N more` (the API sends up to 1000). */
const INDICES_SHOWN = 20;

/** `10 tasks: 3 completed, 2 running, 5 queued`, states with none left out. */
export function countsText(a: Pick<ArraySummary, "count" | "counts">): string {
  const parts = Object.entries(a.counts)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`);
  return `${a.count} tasks${parts.length ? `: ${parts.join(", ")}` : ""}`;
}

function printArray(ctx: Context, a: ArraySummary) {
  const failed = a.failed_indices;
  const shown = failed.slice(0, INDICES_SHOWN).join(", ") + (failed.length > INDICES_SHOWN ? ` and ${failed.length - INDICES_SHOWN} more` : "");
  ctx.print(
    keyValues([
      ["id", a.id],
      ["name", a.name ?? undefined],
      ["status", a.status],
      ["tasks", countsText(a)],
      ["failed", failed.length ? `${shown} (gridx list --array ${a.id} --status failed)` : undefined],
      ["project", a.project],
      ["pool", a.pool],
      ["submitted by", a.submitted_by],
      ["created", `${ago(a.created_at)} (${a.created_at})`],
      ["task 0", a.first_job || undefined],
    ]),
    a,
  );
}

export const array = command({
  name: "array",
  group: "Jobs",
  summary: "show an array: its tasks counted by state, and which failed",
  usage: ["array ID"],
  options: {},
  optionsHelp: "",
  notes: "Its tasks are jobs: gridx list --array ID lists them, gridx status shows one.",
  examples: ["gridx array a_01jd2x7k8m", "gridx array --json a_01jd2x7k8m | jq .failed_indices", "gridx list --array a_01jd2x7k8m --status failed"],
  async run({ positionals }, ctx) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError("give one array id: gridx array ID");
    printArray(ctx, await getArray(ctx.api(), id));
    return EXIT.ok;
  },
});

export const arrayCancel = command({
  name: "array cancel",
  group: "Jobs",
  summary: "cancel every unfinished task of an array (finished ones keep their outcome)",
  usage: ["array cancel ID"],
  options: {},
  optionsHelp: "",
  examples: ["gridx array cancel a_01jd2x7k8m"],
  async run({ positionals }, ctx) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError("give one array id: gridx array cancel ID");
    const api = ctx.api();
    printArray(ctx, await api.json(api.rpc.v1.arrays[":id"].cancel.$post({ param: { id } }), { notFound, forbidden: "canceling needs the member role in the array's project" }));
    return EXIT.ok;
  },
});

export const arrayCommands = [array, arrayCancel];
