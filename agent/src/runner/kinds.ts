import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { JobTask } from "../../../protocol/index.ts";

/** What the agent needs to know to run one kind of job. */
export interface KindHandler<T extends JobTask> {
  image(task: T, images: RunnerImages): string;
  /** Writes the job's inputs into its (host-side) input folder. */
  prepare(task: T, inputDir: string): Promise<void>;
  /** argv replacing the image's entrypoint, or null to run the image as built. */
  argv(task: T): string[] | null;
}

export interface RunnerImages {
  python: string;
}

type Registry = { [K in JobTask["kind"]]: KindHandler<Extract<JobTask, { kind: K }>> };

async function writeReadable(path: string, content: string) {
  await writeFile(path, content);
  await chmod(path, 0o644);
}

/** Every job kind the agent runs. A new kind is one entry here plus its schema in protocol/. */
export const KINDS: Registry = {
  python: {
    image: (_task, images) => images.python,
    async prepare(task, inputDir) {
      await writeReadable(join(inputDir, "main.py"), task.python.script);
      await writeReadable(join(inputDir, "task.json"), JSON.stringify({ script: "main.py", args: task.python.args }));
    },
    argv: () => null,
  },
  command: {
    image: (task) => task.command.image,
    prepare: async () => {},
    argv: (task) => task.command.argv,
  },
};

export function handlerFor(task: JobTask): KindHandler<JobTask> {
  return KINDS[task.kind] as KindHandler<JobTask>;
}
